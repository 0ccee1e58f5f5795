internal import LMDB

/// The LMDB layer's errors as the store's own, at the boundary.
extension JobStoreError {
    /// Wraps an LMDB error at the store's boundary, keeping its code and text.
    init(_ error: LMDBError) {
        let code: Code =
            switch error.code {
            case .closed: .closed
            case .alreadyOpen: .alreadyOpen
            default: .storage
            }
        self.init(code, error.description, underlying: error)
    }

    /// `error` as a `JobStoreError`: itself, or an LMDB error wrapped.
    static func wrapping(_ error: any Error) -> any Error {
        if let error = error as? LMDBError { return JobStoreError(error) }
        return error
    }
}
