// swift-tools-version: 6.0
// minewatch: find cryptojacking in containers.
// Targets depend one way (the README's Layout draws the graph; scripts/check-imports checks both):
// CShims <- Core <- Model <- Signatures; readers (HTTP, Engine, Image, Unpack, Host, Packets) only produce
// values; Analysis (file analysis) <- Scan (images) and Runtime (watch, with Network's judges, Config and
// Sinks); History, Server and Output sit on Model and Sinks; Commands ties them together <- minewatch.
import PackageDescription

let package = Package(
    name: "minewatch",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "minewatch", targets: ["minewatch"]),
        .library(name: "MinewatchCommands", targets: ["MinewatchCommands"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // The error type, byte streams, clock, sizes, SHA-256 (swift-crypto), IPAddress, Endpoint, and
        // ConfinedRoot: the one way to open a path an image or a container controls (openat2, CShims).
        .target(name: "MinewatchCore", dependencies: ["CShims", .product(name: "Crypto", package: "swift-crypto")]),
        // C shims: zlib (linked) and zstd (loaded at run time so building needs no -dev package).
        .target(name: "CShims", linkerSettings: [.linkedLibrary("z"), .linkedLibrary("dl")]),
        // Rule data, rule loading/validation, multi-pattern matcher, wallet validators.
        .target(
            name: "MinewatchSignatures",
            dependencies: ["MinewatchCore", "MinewatchModel", .product(name: "Yams", package: "Yams")],
            resources: [.copy("Rules")]
        ),
        // A small blocking HTTP/1.1 client over unix and TCP sockets (engine API, plain-HTTP registries).
        .target(name: "MinewatchHTTP", dependencies: ["MinewatchCore"]),
        // The Docker Engine API client (podman's compatible service works): images, containers, stop.
        .target(name: "MinewatchEngine", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchHTTP"]),
        // Readers: byte sources, tar, decompression, image sources (archives, layouts, engine
        // exports, registries), layer walker.
        .target(name: "MinewatchImage", dependencies: ["MinewatchCore", "MinewatchModel", "CShims", "MinewatchHTTP", "MinewatchEngine"]),
        // Readers of packets: pcap/pcapng files, link/IP/TCP/UDP decoding, flows and TCP reassembly.
        .target(name: "MinewatchPackets", dependencies: ["MinewatchCore", "CShims"]),
        // Readers of host telemetry: procfs, cgroups v1/v2, network namespaces (for `watch`).
        .target(name: "MinewatchHost", dependencies: ["MinewatchCore", "CShims"]),
        // The shared vocabulary: findings, scan reports, severities, alerts, detector ids, container
        // metadata, response actions, capture reports, telemetry (below every renderer and sink).
        .target(name: "MinewatchModel", dependencies: ["MinewatchCore"]),
        // Sinks of `watch` records behind bounded queues that count drops (files, the live screen, ...).
        .target(name: "MinewatchSinks", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchHTTP"]),
        // The agent's config file and exceptions: loaded and validated with file:line:key errors.
        .target(name: "MinewatchConfig", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchSignatures", .product(name: "Yams", package: "Yams")]),
        // The agent's history: an embedded SQLite database (GRDB), written by a sink, read offline.
        .target(name: "MinewatchHistory", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchSinks", .product(name: "GRDB", package: "GRDB.swift")]),
        // The agent's HTTP endpoints (Hummingbird): Prometheus metrics (swift-prometheus), the
        // dashboard and its JSON API.
        .target(name: "MinewatchServer", dependencies: [
            "MinewatchCore", "MinewatchModel", "MinewatchSinks", "MinewatchHistory",
            .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"), .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "HummingbirdCore", package: "hummingbird"), .product(name: "HummingbirdTLS", package: "hummingbird"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Unpackers of packed executables (UPX: NRV2B/2D/2E decoders, LZMA through the system liblzma).
        .target(name: "MinewatchUnpack", dependencies: ["MinewatchCore", "CShims"]),
        // File analysis: one file's bytes (or a text) against the compiled rules, packed executables
        // unpacked first, capping by benign context and file-scope correlations. Used by scan and watch.
        .target(name: "MinewatchAnalysis", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchSignatures", "MinewatchUnpack"]),
        // Image scanning: targets opened, layers walked and analysed, layer caches, progress.
        .target(name: "MinewatchScan", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchSignatures", "MinewatchImage", "MinewatchAnalysis"]),
        // Network evidence: protocol recognisers (Stratum, PacketCrypt, getwork, TLS SNI, DNS), the
        // capture analyzer, and the bandwidth-miner model shared by `pcap` and `watch`.
        .target(name: "MinewatchNetwork", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchSignatures", "MinewatchPackets"]),
        // Runtime detectors and the watch loop (over MinewatchHost values).
        .target(name: "MinewatchRuntime", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchSinks", "MinewatchSignatures", "MinewatchHost", "MinewatchEngine", "MinewatchAnalysis", "MinewatchNetwork", "MinewatchConfig"]),
        // Signed scan attestations: DSSE envelopes over in-toto Statements (ECDSA P-256 through
        // swift-crypto), stored in and read from an image's registry the way cosign does.
        .target(name: "MinewatchAttest", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchImage", .product(name: "Crypto", package: "swift-crypto")]),
        // The admission webhook's decisions: AdmissionReview parsing, pod specs judged with the
        // manifest rules, images judged by digest (cache, attestations, scans within a deadline).
        .target(name: "MinewatchAdmission", dependencies: [
            "MinewatchCore", "MinewatchModel", "MinewatchSignatures", "MinewatchAnalysis", "MinewatchImage", "MinewatchScan", "MinewatchAttest", "MinewatchConfig",
        ]),
        // Every output format, in one place.
        .target(name: "MinewatchOutput", dependencies: ["MinewatchCore", "MinewatchModel", "MinewatchSignatures", "MinewatchHistory"]),
        // The commands, one per file.
        .target(
            name: "MinewatchCommands",
            dependencies: [
                "MinewatchCore", "MinewatchModel", "MinewatchSinks", "MinewatchSignatures", "MinewatchImage", "MinewatchEngine", "MinewatchScan", "MinewatchOutput",
                "MinewatchHost", "MinewatchRuntime", "MinewatchPackets", "MinewatchNetwork", "MinewatchConfig", "MinewatchServer", "MinewatchHistory", "MinewatchAttest", "MinewatchAdmission",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "minewatch", dependencies: ["MinewatchCommands"]),
        // Measures the matcher alone (scripts/bench-scan).
        .executableTarget(name: "minewatch-bench", dependencies: ["MinewatchSignatures"]),
        // One harness per parser of untrusted bytes, and the libFuzzer driver (scripts/fuzz).
        .target(
            name: "MinewatchFuzz",
            dependencies: ["MinewatchCore", "CShims", "MinewatchSignatures", "MinewatchImage", "MinewatchUnpack", "MinewatchAnalysis", "MinewatchScan", "MinewatchPackets", "MinewatchNetwork", "MinewatchHost", "MinewatchAttest", "MinewatchAdmission"]
        ),
        .executableTarget(name: "mw-fuzz", dependencies: ["MinewatchFuzz", "CShims"]),
        // Test workloads that speak the real miner and pool protocols (Stratum, PacketCrypt).
        .executableTarget(name: "mw-workload", dependencies: ["MinewatchCore", "CShims", "CWorkloadTLS", .product(name: "Crypto", package: "swift-crypto")]),
        // TLS for the test workloads only (the system's OpenSSL, loaded at run time).
        .target(name: "CWorkloadTLS", linkerSettings: [.linkedLibrary("dl")]),

        .testTarget(name: "CoreTests", dependencies: ["MinewatchCore", "TestSupport"]),
        .testTarget(name: "ModelTests", dependencies: ["MinewatchModel"]),
        .testTarget(name: "PacketsTests", dependencies: ["MinewatchPackets", "MinewatchCore", "TestSupport"]),
        .testTarget(name: "SinksTests", dependencies: ["MinewatchSinks", "MinewatchCore", "MinewatchModel", "TestSupport"]),
        .testTarget(name: "ServerTests", dependencies: ["MinewatchServer", "MinewatchSinks", "MinewatchModel", "TestSupport"]),
        .testTarget(name: "AnalysisTests", dependencies: ["MinewatchAnalysis", "MinewatchCore", "MinewatchModel", "MinewatchSignatures"]),
        .testTarget(name: "SignaturesTests", dependencies: ["MinewatchSignatures", "MinewatchCore", "MinewatchModel"]),
        .testTarget(name: "UnpackTests", dependencies: ["MinewatchUnpack", "TestSupport"]),
        .testTarget(name: "HostTests", dependencies: ["MinewatchHost", "MinewatchCore", "TestSupport"]),
        .testTarget(name: "RuntimeTests", dependencies: ["MinewatchRuntime", "MinewatchCore", "MinewatchConfig", "MinewatchModel", "MinewatchSinks", "MinewatchNetwork", "MinewatchPackets", "MinewatchHost", "MinewatchSignatures", "TestSupport"]),
        .testTarget(name: "NetworkTests", dependencies: ["MinewatchNetwork", "MinewatchModel", "MinewatchPackets", "MinewatchSignatures", "MinewatchCore", "CShims", "TestSupport"]),
        .testTarget(name: "ImageTests", dependencies: ["MinewatchImage", "MinewatchCore", "TestSupport"]),
        .testTarget(name: "ScanTests", dependencies: ["MinewatchScan", "MinewatchModel", "MinewatchSignatures", "MinewatchImage", "MinewatchCore", "TestSupport"]),
        .testTarget(name: "OutputTests", dependencies: ["MinewatchOutput", "MinewatchModel", "MinewatchSignatures", "MinewatchCore", "TestSupport"],
                    exclude: ["Golden"]),  // read by path (#filePath), so they can be refreshed in place
        .testTarget(name: "CLITests", dependencies: ["TestSupport"]),
        .testTarget(name: "FuzzTests", dependencies: ["MinewatchFuzz", "TestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "AttestTests", dependencies: ["MinewatchAttest", "MinewatchCore", "MinewatchModel", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "AdmissionTests", dependencies: [
            "TestSupport", "MinewatchAdmission", "MinewatchAttest", "MinewatchConfig", "MinewatchCore", "MinewatchImage", "MinewatchModel", "MinewatchSignatures",
        ]),
        .testTarget(name: "ConfigTests", dependencies: ["MinewatchConfig", "MinewatchCore", "MinewatchModel"]),
        .testTarget(name: "HistoryTests", dependencies: ["MinewatchHistory", "MinewatchCore", "MinewatchModel", "MinewatchSinks", "MinewatchServer", "TestSupport"]),
        // Builders for synthetic samples and archives used by several test targets.
        .target(name: "TestSupport", dependencies: ["MinewatchCore", "MinewatchModel"], path: "Tests/TestSupport"),
    ],
    swiftLanguageModes: [.v6]
)
