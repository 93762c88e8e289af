#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one error type of minewatch. It names the operation that failed, the subject
/// (a file, a layer, a rule), where in it (offset or line) and the errno when there is one.
/// Its `description` is a single line suitable for a user-facing error message.
public struct MinewatchError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let io = Code("io")
        public static let format = Code("format")
        public static let unsupported = Code("unsupported")
        public static let limit = Code("limit")
        public static let unsafePath = Code("unsafe-path")
        public static let rules = Code("rules")
        public static let network = Code("network")
        public static let notFound = Code("not-found")
        public static let invalidArgument = Code("invalid-argument")
    }

    public var code: Code
    /// What was being done, lower case ("read tar header", "open layer").
    public var operation: String
    /// The file, layer, URL or rule the error is about.
    public var subject: String?
    /// Byte offset (archives, captures) or 1-based line (rule files) where it happened.
    public var offset: Int64?
    public var line: Int?
    public var errno: Int32?
    public var message: String

    public init(
        _ code: Code, operation: String, subject: String? = nil, offset: Int64? = nil,
        line: Int? = nil, errno: Int32? = nil, message: String
    ) {
        self.code = code
        self.operation = operation
        self.subject = subject
        self.offset = offset
        self.line = line
        self.errno = errno
        self.message = message
    }

    /// An error from a failed system call, carrying `errno` and its text.
    public static func posix(_ operation: String, subject: String?, errno err: Int32) -> MinewatchError {
        let text = String(cString: strerror(err))
        return MinewatchError(.io, operation: operation, subject: subject, errno: err, message: text.lowercased())
    }

    public var description: String {
        var head = ""
        if let subject {
            head += subject
            if let line { head += ":\(line)" }
            if let offset { head += " at offset \(offset)" }
            head += ": "
        }
        var text = "\(head)\(operation): \(message)"
        if let errno { text += " (errno \(errno))" }
        return String(text.map { $0 == "\n" ? " " : $0 })
    }

    /// The same error, naming a subject when it had none (used when a reader reports
    /// an entry-relative problem and the caller knows the file).
    public func withSubject(_ s: String) -> MinewatchError {
        var copy = self
        if copy.subject == nil { copy.subject = s }
        return copy
    }
}
