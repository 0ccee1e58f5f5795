// The model and the protocols of the core come with the scheduler, whichever backend runs it.
@_exported import JobCore
