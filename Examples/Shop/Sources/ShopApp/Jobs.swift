import JobStore

/// Sends a new customer's welcome mail: at most one live per address (its unique key).
public struct SendWelcome: JobDefinition {
    public static let name = "send-welcome"
    public static let options = JobOptions(queue: "mail", maxAttempts: 5, timeout: .seconds(30))
    public var email: String
    public var uniqueKey: String? { "welcome:\(email)" }

    public init(email: String) { self.email = email }
}

/// Makes the thumbnails of an album's cover: the first step of the publishing pipeline.
public struct MakeThumbnails: JobDefinition {
    public static let name = "make-thumbnails"
    public static let options = JobOptions(queue: "media", maxAttempts: 3, timeout: .seconds(60))
    public var album: String
    public var sizes: [Int]
}

/// What ``MakeThumbnails`` leaves for the steps after it: the files it made.
public struct Thumbnails: Codable, Sendable {
    public var files: [String]
}

/// Publishes an album once its thumbnails exist: reads ``MakeThumbnails``' result.
public struct PublishAlbum: JobDefinition {
    public static let name = "publish-album"
    public static let options = JobOptions(queue: "media", maxAttempts: 3)
    public var album: String
}
