// mw-workload: test workloads that speak the real protocols from threat-facts.md, for minewatch's
// own tests and benchmarks. Every mode is bounded by --duration (at most 3600 s) and is meant for
// loopback or a test network that the test itself created.
//
//   mw-workload stratum-pool  --listen 127.0.0.1:3333 --dialect monero|bitcoin|ethproxy|ethstratum [--target HEX] [--duration S]
//   mw-workload stratum-miner --pool 127.0.0.1:3333 --dialect monero|bitcoin|ethproxy|ethstratum --wallet W [--duration S]
//   mw-workload ann-handler   --listen 127.0.0.1:8080 [--public-url http://127.0.0.1:8080] [--duration S]
//   mw-workload ann-miner     --pool URL [--pool URL...] --paymentaddr pkt1... [--rate N] [--duration S]
// Benign loads (what the detectors must stay quiet on):
//   mw-workload http-server   --listen 127.0.0.1:8000 [--duration S]   (GET /file/<bytes>, POST /upload, POST /api)
//   mw-workload download      --url http://H:P/file/<bytes> [--clients N] [--rate BYTES_PER_S] [--duration S]
//   mw-workload upload        --url http://H:P/upload --bytes N [--rate BYTES_PER_S] [--duration S]
//   mw-workload api-client    --url http://H:P/api [--rps N] [--duration S]
//   mw-workload compress      [--threads N] [--duration S]
import Foundation

func value(_ name: String, in args: [String]) -> String? {
    args.firstIndex(of: name).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil }
}

func values(_ name: String, in args: [String]) -> [String] {
    args.indices.filter { args[$0] == name && $0 + 1 < args.count }.map { args[$0 + 1] }
}

let args = Array(CommandLine.arguments.dropFirst())
guard let mode = args.first else {
    log("usage: mw-workload stratum-pool|stratum-miner|ann-handler|ann-miner|http-server|download|upload|api-client|compress ...")
    exit(64)
}
let duration = min(3600, Double(value("--duration", in: args) ?? "60") ?? 60)
let deadline = Date().addingTimeInterval(duration)
do {
    switch mode {
    case "stratum-pool":
        let (h, p) = try hostPort(value("--listen", in: args) ?? "127.0.0.1:3333")
        let target = UInt32(value("--target", in: args) ?? "", radix: 16) ?? 0x0004_0000
        try Stratum.runPool(host: h, port: p, dialect: value("--dialect", in: args) ?? "monero", target: target,
                            jobEvery: Double(value("--job-every", in: args) ?? "10") ?? 10, deadline: deadline)
    case "stratum-miner":
        try Stratum.runMiner(pool: value("--pool", in: args) ?? "127.0.0.1:3333", dialect: value("--dialect", in: args) ?? "monero",
                             wallet: value("--wallet", in: args) ?? "x", deadline: deadline)
    case "ann-handler":
        let listen = value("--listen", in: args) ?? "127.0.0.1:8080"
        let (h, p) = try hostPort(listen)
        try PacketCrypt.runHandler(host: h, port: p, publicURL: value("--public-url", in: args) ?? "http://\(listen)", deadline: deadline)
    case "ann-miner":
        try PacketCrypt.runMiner(pools: values("--pool", in: args), payto: value("--paymentaddr", in: args) ?? "",
                                 rate: Double(value("--rate", in: args) ?? "200") ?? 200, deadline: deadline)
    case "http-server":
        let (h, p) = try hostPort(value("--listen", in: args) ?? "127.0.0.1:8000")
        try Benign.runServer(host: h, port: p, deadline: deadline)
    case "download":
        try Benign.runDownload(url: value("--url", in: args) ?? "", clients: Int(value("--clients", in: args) ?? "1") ?? 1,
                               rate: Double(value("--rate", in: args) ?? "0") ?? 0, deadline: deadline)
    case "upload":
        try Benign.runUpload(url: value("--url", in: args) ?? "", bytes: Int(value("--bytes", in: args) ?? "") ?? 10_000_000,
                             rate: Double(value("--rate", in: args) ?? "0") ?? 0, deadline: deadline)
    case "api-client":
        try Benign.runAPIClient(url: value("--url", in: args) ?? "", rps: Double(value("--rps", in: args) ?? "20") ?? 20, deadline: deadline)
    case "compress":
        Benign.runCompress(threads: Int(value("--threads", in: args) ?? "1") ?? 1, deadline: deadline)
    default:
        log("unknown mode \(mode)")
        exit(64)
    }
} catch {
    log("\(mode): \(error)")
    exit(1)
}
