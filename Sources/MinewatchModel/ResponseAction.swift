/// What `watch` does with an alert at or above `--act-on`.
public enum ResponseAction: String, Sendable, Codable, CaseIterable {
    /// Report only (the default).
    case alert
    /// Freeze the container's cgroup (v1 freezer or v2 cgroup.freeze): processes stop, memory and
    /// files stay for forensics; `podman unpause`/`docker unpause` or writing THAWED resumes it.
    case freeze
    /// SIGKILL the process the alert names.
    case kill
    /// Stop the container through the engine API.
    case stop
}
