import LMDB
print(Environment.libraryVersion)
