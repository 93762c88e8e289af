/// The version minewatch reports (in reports, the User-Agent, cache keys).
public enum MinewatchVersion {
    public static let current = "0.1.0"
}
