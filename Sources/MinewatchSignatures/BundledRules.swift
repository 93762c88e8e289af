import Foundation
import MinewatchCore

/// Finds and loads the rule files shipped with minewatch.
///
/// The rules are YAML files copied as a SwiftPM resource. They are looked up, in order, in
/// `$MINEWATCH_RULES_DIR`, in the resource bundle next to the running executable, and in
/// `/usr/share/minewatch/rules` and `/usr/local/share/minewatch/rules` (for installed copies).
public enum BundledRules {
    public static let bundleName = "minewatch_MinewatchSignatures.resources"

    public static func directory() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["MINEWATCH_RULES_DIR"], !env.isEmpty { candidates.append(env) }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        candidates.append(exe.appendingPathComponent(bundleName).appendingPathComponent("Rules").path)
        candidates.append(exe.appendingPathComponent("../share/minewatch/rules").standardized.path)
        candidates.append(Bundle.main.bundleURL.appendingPathComponent(bundleName).appendingPathComponent("Rules").path)
        candidates.append("/usr/share/minewatch/rules")
        candidates.append("/usr/local/share/minewatch/rules")
        for c in candidates {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: c, isDirectory: &isDir), isDir.boolValue { return c }
        }
        return nil
    }

    public static func files() -> [String] {
        guard let dir = directory(),
              let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { "\(dir)/\($0)" }
    }

    /// Loads bundled rules, then each user file in order (later ids override earlier ones).
    public static func load(userFiles: [String] = [], includeBundled: Bool = true) -> (RuleSet, [RuleDiagnostic]) {
        var set = RuleSet(rules: [], correlations: [])
        var diags: [RuleDiagnostic] = []
        let loader = RuleLoader()
        let bundled = files()
        if includeBundled {
            if bundled.isEmpty {
                diags.append(RuleDiagnostic(file: "(bundled)", line: nil, ruleId: nil,
                                            message: "bundled rules not found; set MINEWATCH_RULES_DIR to the Rules folder"))
            }
            for f in bundled {
                let out = loader.load(path: f)
                diags += out.diagnostics
                set = set.merged(with: out.ruleSet, disabled: out.disabled)
            }
        } else {
            // Without the bundled rules, their verdicts still name what pcap and watch report.
            for f in bundled {
                set.verdicts.merge(loader.load(path: f).ruleSet.verdicts) { mine, theirs in mine.merged(with: theirs) }
            }
        }
        for f in userFiles {
            let out = loader.load(path: f)
            diags += out.diagnostics
            set = set.merged(with: out.ruleSet, disabled: out.disabled)
        }
        return (set, diags)
    }
}
