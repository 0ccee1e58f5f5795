// The only C the project touches: LMDB's public header (Debian's liblmdb-dev).
#include <lmdb.h>
