// mw-workload: test workloads that speak the real protocols from threat-facts.md, for minewatch's
// own tests and benchmarks. Every mode is bounded by --duration (at most 3600 s) and is meant for
// loopback or a test network that the test itself created.
//
//   mw-workload stratum-pool  --listen 127.0.0.1:3333 --dialect monero|bitcoin|ethproxy|ethstratum [--target HEX] [--share-every S (monero: vardiff)]
//                             [--job-every S] [--tls-cert PEM --tls-key PEM] [--duration S]
//   mw-workload stratum-miner --pool 127.0.0.1:3333 --dialect monero|bitcoin|ethproxy|ethstratum --wallet W [--agent A] [--tls] [--duration S]
//   mw-workload ann-handler   --listen 127.0.0.1:8080 [--public-url http://127.0.0.1:8080] [--duration S]
//   mw-workload ann-miner     --pool URL [--pool URL...] --paymentaddr pkt1... [--rate N] [--duration S]
// Benign loads (what the detectors must stay quiet on):
//   mw-workload http-server   --listen 127.0.0.1:8000 [--duration S]   (GET /file/<bytes>, POST /upload, POST /api)
//   mw-workload download      --url http://H:P/file/<bytes> [--clients N] [--rate BYTES_PER_S] [--duration S]
//   mw-workload upload        --url http://H:P/upload --bytes N [--rate BYTES_PER_S] [--duration S]
//   mw-workload api-client    --url http://H:P/api [--rps N] [--duration S]
//   mw-workload compress      [--threads N] [--duration S]
//   mw-workload numeric       [--duration S]   (256 MiB of random doubles, matrix products and libm: honest CPU)
//   mw-workload http-server   ... [--tls-cert PEM --tls-key PEM]   (HTTPS)
//   mw-workload log-shipper   --url http://H:P/_bulk [--rate BYTES_PER_S] [--every S]
//   mw-workload remote-write  --url http://H:P/api/v1/write [--bytes N]
//   mw-workload backup        --url https://H:P/repo [--min-chunk N] [--max-chunk N] [--rate BYTES_PER_S]
//   mw-workload forward-proxy --listen H:P                       (HTTP CONNECT, its own clients)
//   mw-workload reverse-proxy --listen H:P --backend H:P [--backend H:P...]
//   mw-workload sidecar       --listen H:P --upstream H:P [--upstream H:P...] [--calls N]
//   mw-workload crawler       --target H:P [--target H:P...] [--queue H:P] [--pages N] [--page-bytes N]
// Proxyjacking (a residential-proxy network) and DePIN farming:
//   mw-workload proxy-vendor  --listen H:P --customers H:P --tls-cert PEM --tls-key PEM
//   mw-workload proxy-node    --vendor H:P --sni NAME [--allow H:P]   (with --allow: a tunnel agent for one service)
//   mw-workload proxy-customer (--vendor H:P... | --http-proxy H:P) --target H:P [--target H:P...] [--streams N] [--rate BYTES_PER_S] [--fetch-only]
//   mw-workload poll-vendor   --listen H:P --customers H:P [--tls-cert PEM --tls-key PEM]   (jobs by polling, no tunnel)
//   mw-workload poll-node     --vendor NAME:P [--address IP...] [--tls]   (a fresh connection per poll, fetch and result)
//   mw-workload etl           --source H:P [--source H:P...] --store URL [--pages N] [--page-bytes N] [--batch N]
//   mw-workload heartbeat-server --listen H:P --tls-cert PEM --tls-key PEM
//   mw-workload heartbeat     --server H:P --sni NAME [--period S]
// Started under a service's program name with its arguments (/app/honeygain -tou-accept ...),
// it only waits (at most 120 s): what runs is what the detectors must name.
import Foundation

func value(_ name: String, in args: [String]) -> String? {
    args.firstIndex(of: name).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil }
}

func values(_ name: String, in args: [String]) -> [String] {
    args.indices.filter { args[$0] == name && $0 + 1 < args.count }.map { args[$0 + 1] }
}

let modes: Set<String> = ["stratum-pool", "stratum-miner", "ann-handler", "ann-miner", "http-server", "log-shipper", "remote-write",
                           "backup", "forward-proxy", "reverse-proxy", "sidecar", "crawler", "proxy-vendor", "proxy-node",
                           "proxy-customer", "heartbeat-server", "heartbeat", "download", "upload", "api-client", "compress",
                           "poll-vendor", "poll-node", "etl", "numeric"]
var args = Array(CommandLine.arguments.dropFirst())
let program = CommandLine.arguments.first ?? ""
if let first = args.first, !modes.contains(first), !program.hasSuffix("/svc"), !program.hasSuffix("mw-workload") {
    // A proxyware-style entrypoint: wait, bounded, and do nothing else.
    usleep(UInt32(min(120, Double(ProcessInfo.processInfo.environment["MW_IDLE_SECONDS"] ?? "90") ?? 90) * 1_000_000))
    exit(0)
}
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
        let tls = try value("--tls-cert", in: args).map { try tlsServerContext(cert: $0, key: value("--tls-key", in: args) ?? "") }
        try Stratum.runPool(host: h, port: p, dialect: value("--dialect", in: args) ?? "monero", target: target,
                            jobEvery: Double(value("--job-every", in: args) ?? "10") ?? 10,
                            shareEvery: value("--share-every", in: args).flatMap(Double.init), tls: tls, deadline: deadline)
    case "stratum-miner":
        try Stratum.runMiner(pool: value("--pool", in: args) ?? "127.0.0.1:3333", dialect: value("--dialect", in: args) ?? "monero",
                             wallet: value("--wallet", in: args) ?? "x",
                             agent: value("--agent", in: args) ?? "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0",
                             tls: args.contains("--tls"), deadline: deadline)
    case "ann-handler":
        let listen = value("--listen", in: args) ?? "127.0.0.1:8080"
        let (h, p) = try hostPort(listen)
        try PacketCrypt.runHandler(host: h, port: p, publicURL: value("--public-url", in: args) ?? "http://\(listen)", deadline: deadline)
    case "ann-miner":
        try PacketCrypt.runMiner(pools: values("--pool", in: args), payto: value("--paymentaddr", in: args) ?? "",
                                 rate: Double(value("--rate", in: args) ?? "200") ?? 200, deadline: deadline)
    case "http-server":
        let (h, p) = try hostPort(value("--listen", in: args) ?? "127.0.0.1:8000")
        let tls = try value("--tls-cert", in: args).map { try tlsServerContext(cert: $0, key: value("--tls-key", in: args) ?? "") }
        try Benign.runServer(host: h, port: p, tls: tls, deadline: deadline)
    case "log-shipper":
        try Lookalikes.runLogShipper(url: value("--url", in: args) ?? "", rate: Double(value("--rate", in: args) ?? "250000") ?? 250_000,
                                     every: Double(value("--every", in: args) ?? "0.5") ?? 0.5, deadline: deadline)
    case "remote-write":
        try Lookalikes.runRemoteWrite(url: value("--url", in: args) ?? "", bytesPerRequest: Int(value("--bytes", in: args) ?? "120000") ?? 120_000, deadline: deadline)
    case "backup":
        try Lookalikes.runBackup(url: value("--url", in: args) ?? "", minChunk: Int(value("--min-chunk", in: args) ?? "1048576") ?? 1 << 20,
                                 maxChunk: Int(value("--max-chunk", in: args) ?? "8388608") ?? 8 << 20,
                                 rate: Double(value("--rate", in: args) ?? "2000000") ?? 2_000_000, deadline: deadline)
    case "forward-proxy":
        try Lookalikes.runForwardProxy(listen: value("--listen", in: args) ?? "127.0.0.1:3128", deadline: deadline)
    case "reverse-proxy":
        try Lookalikes.runReverseProxy(listen: value("--listen", in: args) ?? "127.0.0.1:8080", backends: values("--backend", in: args), deadline: deadline)
    case "sidecar":
        try Lookalikes.runSidecar(listen: value("--listen", in: args) ?? "127.0.0.1:15006", upstreams: values("--upstream", in: args),
                                  callsPerSecond: Double(value("--calls", in: args) ?? "5") ?? 5, deadline: deadline)
    case "crawler":
        try Lookalikes.runCrawler(targets: values("--target", in: args), queue: value("--queue", in: args),
                                  pagesPerSecond: Double(value("--pages", in: args) ?? "5") ?? 5,
                                  pageBytes: Int(value("--page-bytes", in: args) ?? "200000") ?? 200_000, deadline: deadline)
    case "proxy-vendor":
        try Proxy.runVendor(listen: value("--listen", in: args) ?? "127.0.0.1:8443", customers: value("--customers", in: args) ?? "127.0.0.1:9000",
                            cert: value("--tls-cert", in: args) ?? "", key: value("--tls-key", in: args) ?? "", deadline: deadline)
    case "proxy-node":
        try Proxy.runNode(vendor: value("--vendor", in: args) ?? "", sni: value("--sni", in: args) ?? "vendor.example",
                          allow: value("--allow", in: args), deadline: deadline)
    case "proxy-customer":
        try Proxy.runCustomers(vendors: values("--vendor", in: args), httpProxy: value("--http-proxy", in: args), targets: values("--target", in: args),
                               streams: Int(value("--streams", in: args) ?? "4") ?? 4, rate: Double(value("--rate", in: args) ?? "200000") ?? 200_000,
                               fetchOnly: args.contains("--fetch-only"), deadline: deadline)
    case "poll-vendor":
        let tls = try value("--tls-cert", in: args).map { try tlsServerContext(cert: $0, key: value("--tls-key", in: args) ?? "") }
        try PollProxy.runVendor(listen: value("--listen", in: args) ?? "127.0.0.1:8443", customers: value("--customers", in: args) ?? "127.0.0.1:9000",
                                tls: tls, deadline: deadline)
    case "poll-node":
        try PollProxy.runNode(vendor: value("--vendor", in: args) ?? "", addresses: values("--address", in: args), tls: args.contains("--tls"),
                              deadline: deadline)
    case "etl":
        try Lookalikes.runETL(sources: values("--source", in: args), store: value("--store", in: args) ?? "",
                              pagesPerSecond: Double(value("--pages", in: args) ?? "5") ?? 5,
                              pageBytes: Int(value("--page-bytes", in: args) ?? "100000") ?? 100_000,
                              batch: Int(value("--batch", in: args) ?? "20") ?? 20, deadline: deadline)
    case "heartbeat-server":
        try Heartbeat.runServer(listen: value("--listen", in: args) ?? "127.0.0.1:4443", cert: value("--tls-cert", in: args) ?? "",
                                key: value("--tls-key", in: args) ?? "", deadline: deadline)
    case "heartbeat":
        try Heartbeat.runClient(server: value("--server", in: args) ?? "", sni: value("--sni", in: args) ?? "localhost",
                                period: Double(value("--period", in: args) ?? "5") ?? 5, deadline: deadline)
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
    case "numeric":
        Benign.runNumeric(deadline: deadline)
    default:
        log("unknown mode \(mode)")
        exit(64)
    }
} catch {
    log("\(mode): \(error)")
    exit(1)
}
