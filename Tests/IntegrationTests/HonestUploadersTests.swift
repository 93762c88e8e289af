import Foundation
import Testing
import TestSupport

/// Issue 16: real upload-heavy programs from Debian's archive (none written in this repository),
/// each in a container on a test network (198.18.1.0/26) against the real server program it
/// normally talks to, also from Debian and also in a container. Each client uploads 250-420 kB/s
/// for about a minute with a sent:received ratio far above 8:1 (the programs' own rate limits keep
/// it bounded), most of it already-compressed, encrypted or media payloads, in repeated requests
/// or over many connections: an HLS live stream (ffmpeg, MPEG-TS segments PUT over clear-text HTTP
/// to nginx), a photo sync (rclone to nginx's WebDAV), an encrypted backup (restic to rclone's
/// restic REST server, clear-text HTTP), an archive backup (rsync to rsyncd), log forwarding
/// (rsyslog to rsyslog over TCP), camera snapshots (JPEG in base64 JSON) published to an MQTT broker
/// (mosquitto_pub to mosquitto), batches of photos pushed over git:// (git to git daemon), a database load (psql COPY
/// to PostgreSQL), an FTP upload of archives (curl to vsftpd) and a network test (iperf3). Two
/// watchers with the bundled rules (with and without capture) and `pcap` on the recorded bridge
/// raise nothing at medium or above for any of them; what the model saw of each is printed.
@Suite(.serialized) struct HonestUploadersTests {
    /// PostgreSQL's programs (`/usr/lib/postgresql/<newest>/bin`), not on PATH on Debian.
    static func postgresBin() -> String {
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).compactMap(Int.init).sorted()
        return "/usr/lib/postgresql/\(versions.last.map(String.init) ?? "15")/bin"
    }

    @Test func debianUploadersStayQuiet() throws {
        try Podman.require()
        try prerequisite(getuid() == 0, "root is required under CI=true for packet capture")
        let pg = Self.postgresBin()
        try requireTools(["tcpdump", "ffmpeg", "/usr/sbin/nginx", "rclone", "restic", "rsync", "/usr/sbin/rsyslogd", "/usr/sbin/mosquitto",
                          "mosquitto_pub", "git", "\(pg)/initdb", "\(pg)/postgres", "\(pg)/psql", "/usr/sbin/vsftpd", "curl", "iperf3", "pv", "timeout", "awk", "base64", "/usr/sbin/tc"])
        let davModule = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"
        try prerequisite(FileManager.default.fileExists(atPath: davModule), "missing: \(davModule) (libnginx-mod-http-dav-ext; scripts/install-deps installs it)")
        let lab = try WorkloadLab("hu")
        defer { lab.cleanup() }
        let dir = lab.dir

        // A root with the accounts the servers want (vsftpd's ftp, PostgreSQL's postgres) and a
        // world-writable /tmp; the programs themselves are the host's, mounted read-only.
        try FileManager.default.createDirectory(atPath: dir.path + "/hu-root/tmp", withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o1777], ofItemAtPath: dir.path + "/hu-root/tmp")   // not masked by umask
        for d in ["run", "var/run", "var/log", "srv", "root"] {
            try FileManager.default.createDirectory(atPath: dir.path + "/hu-root/" + d, withIntermediateDirectories: true)
        }
        _ = try dir.file("hu-root/etc/passwd", Array("""
            root:x:0:0:root:/root:/bin/sh
            ftp:x:100:101:ftp:/srv/ftp:/usr/sbin/nologin
            postgres:x:999:999:PostgreSQL:/tmp:/bin/sh
            nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

            """.utf8))
        _ = try dir.file("hu-root/etc/group", Array("root:x:0:\nftp:x:101:\npostgres:x:999:\nnogroup:x:65534:\n".utf8))
        _ = try dir.file("hu-root/etc/nsswitch.conf", Array("passwd: files\ngroup: files\nhosts: files\n".utf8))
        _ = try dir.file("hu-root/etc/hostname", Array("h\n".utf8))
        let base = "localhost/mw-hu:\(UUID().uuidString.prefix(8).lowercased())"
        try Podman.importRootfs(dir.path + "/hu-root", tag: base)
        lab.adopt(image: base)

        // The servers' configurations.
        let conf = dir.path + "/conf"
        _ = try dir.file("conf/nginx.conf", Array("""
            user root;
            worker_processes 1;
            daemon off;
            pid /tmp/nginx.pid;
            error_log stderr warn;
            load_module \(davModule);
            events { worker_connections 256; }
            http {
              access_log /tmp/access.log;
              client_body_temp_path /tmp/body;
              proxy_temp_path /tmp/proxy;
              fastcgi_temp_path /tmp/fastcgi;
              uwsgi_temp_path /tmp/uwsgi;
              scgi_temp_path /tmp/scgi;
              client_max_body_size 0;
              server {
                listen 80;
                root /srv/www;
                location / {
                  dav_methods PUT DELETE MKCOL COPY MOVE;
                  dav_ext_methods PROPFIND OPTIONS;
                  create_full_put_path on;
                  dav_access user:rw group:rw all:r;
                  autoindex on;
                }
              }
            }

            """.utf8))
        _ = try dir.file("conf/rsyncd.conf", Array("""
            uid = root
            gid = root
            use chroot = no
            max connections = 8
            pid file = /tmp/rsyncd.pid
            log file = /dev/stdout
            [backup]
              path = /srv/backup
              read only = no

            """.utf8))
        _ = try dir.file("conf/rsyslog-server.conf", Array("""
            global(workDirectory="/tmp")
            module(load="imtcp")
            input(type="imtcp" port="514")
            template(name="raw" type="string" string="%TIMESTAMP% %HOSTNAME% %syslogtag%%msg%\\n")
            action(type="omfile" file="/srv/log/remote.log" template="raw")

            """.utf8))
        _ = try dir.file("conf/rsyslog-client.conf", Array("""
            global(workDirectory="/tmp/rs")
            module(load="imfile" mode="polling" PollingInterval="1")
            input(type="imfile" File="/var/log/app/access.log" Tag="webapp:" Severity="info" Facility="local0")
            action(type="omfwd" target="198.18.1.14" port="514" protocol="tcp" queue.type="LinkedList" queue.size="100000" action.resumeRetryCount="-1")

            """.utf8))
        _ = try dir.file("conf/mosquitto.conf", Array("""
            user root
            listener 1883
            allow_anonymous true
            persistence false
            log_dest stdout
            log_type all

            """.utf8))
        _ = try dir.file("conf/vsftpd.conf", Array("""
            listen=YES
            listen_ipv6=NO
            background=NO
            anonymous_enable=YES
            local_enable=NO
            write_enable=YES
            anon_upload_enable=YES
            anon_mkdir_write_enable=YES
            anon_umask=022
            anon_root=/srv/ftp
            no_anon_password=YES
            ftp_username=ftp
            secure_chroot_dir=/var/run/vsftpd/empty
            seccomp_sandbox=NO
            pasv_enable=YES
            pasv_min_port=30000
            pasv_max_port=30100
            connect_from_port_20=NO
            xferlog_enable=YES
            vsftpd_log_file=/tmp/vsftpd.log

            """.utf8))
        _ = try dir.file("conf/pg_hba.conf", Array("local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all 198.18.1.0/26 trust\n".utf8))

        // Payloads, made here: JPEG photos and camera frames (ffmpeg's test source with noise),
        // random files (the backup), gzip archives of random bytes, an access log, CSV batches.
        let payload = dir.path + "/payload"
        for d in ["photos", "frames", "backup", "archives", "csv"] {
            try FileManager.default.createDirectory(atPath: payload + "/" + d, withIntermediateDirectories: true)
        }
        for (src, frames, out) in [("testsrc2=size=1280x720:rate=1,noise=alls=30:allf=t", "60", "photos/IMG_%04d.jpg"),
                                   ("testsrc2=size=640x480:rate=4,noise=alls=20:allf=t", "60", "frames/f%04d.jpg")] {
            let r = try run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", src, "-frames:v", frames, "-q:v", "3", payload + "/" + out])
            #expect(r.status == 0, "ffmpeg: \(r.err)")
        }
        let urandom = try #require(FileHandle(forReadingAtPath: "/dev/urandom"))
        defer { try? urandom.close() }
        // restic at 300 KiB/s: 19 MB is done (snapshot saved) in about 63 s.
        for i in 1...19 { _ = try dir.file(String(format: "payload/backup/doc%02d.bin", i), Array(urandom.readData(ofLength: 1_000_000))) }
        for i in 1...30 { _ = try dir.file(String(format: "payload/archives/dump-%02d.gz", i), try gzip(Array(urandom.readData(ofLength: 1_000_000)))) }
        let logProgram = try dir.file("gen-log.awk", Array("""
            BEGIN { srand(7); for (i = 0; i < 140000; i++) printf "198.18.%d.%d - - [06/Dec/2025:01:%02d:%02d +0000] \\"GET /api/v2/items/%d?session=%08x HTTP/1.1\\" %d %d \\"-\\" \\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\\" rt=%.3f\\n", int(rand()*255), int(rand()*255), int(i/60)%60, i%60, int(rand()*1e6), int(rand()*4e9), (rand() < 0.9 ? 200 : 404), int(rand()*50000), rand() }

            """.utf8))
        let log = try run(["awk", "-f", logProgram])
        _ = try dir.file("payload/access.log.src", log.out)
        let csvProgram = try dir.file("gen-csv.awk", Array("""
            BEGIN { srand(s); for (i = 0; i < 5000; i++) { printf "%d,sensor-%03d,2025-12-06T01:%02d:%02d,%.4f,", s*5000+i, int(rand()*500), int(i/60)%60, i%60, rand()*100; for (j = 0; j < 48; j++) printf "%08x", int(rand()*4294967295); printf "\\n" } }

            """.utf8))
        for b in 1...16 {
            let csv = try run(["awk", "-v", "s=\(b)", "-f", csvProgram])
            _ = try dir.file(String(format: "payload/csv/batch-%02d.csv", b), csv.out)
        }

        let net = try lab.createNetwork(subnet: "198.18.1.0/26")
        let bridge = Podman.inspectNetwork(net, "{{.NetworkInterface}}")
        // The host's programs, their data and libraries (/usr/share: PostgreSQL's initdb files,
        // git's templates; /etc/alternatives: ffmpeg's BLAS and LAPACK, awk), read-only.
        let mounts = Podman.hostMounts + ["-v", "/usr/sbin:/usr/sbin:ro", "-v", "/usr/share:/usr/share:ro", "-v", "/etc/alternatives:/etc/alternatives:ro",
                                          "-v", "\(conf):/conf:ro", "-v", "\(payload):/payload:ro",
                                          "-e", "PATH=\(pg):/usr/sbin:/usr/bin:/sbin:/bin", "-e", "HOME=/tmp"]
        var ipOf: [String: String] = [:]
        func start(_ role: String, _ ip: String, options: [String] = [], _ command: [String]) throws -> String {
            ipOf[role] = ip
            return try lab.container(role, ip: ip, options: mounts + options, command: [base] + command)
        }
        // Servers at .10-.19, each bounded in time (the lab removes them anyway).
        var servers: [(String, String)] = []
        func server(_ role: String, _ ip: String, options: [String] = [], _ command: String) throws {
            servers.append((role, try start(role, ip, options: options, ["timeout", "240", "sh", "-c", command])))
        }
        try server("hlssrv", "198.18.1.10", "mkdir -p /srv/www/live && nginx -e stderr -c /conf/nginx.conf")
        try server("davsrv", "198.18.1.11", "mkdir -p /srv/www && nginx -e stderr -c /conf/nginx.conf")
        // Port 8000: the default of restic's REST server (rest-server); rclone's is 8080. Both are
        // in the bundled minerPorts list, so watch reports a low pool-contact for the port alone.
        // Until issue 16 that low alert corroborated the upload-heavy shape into a high
        // bandwidth-miner alert; only alerts at medium or above corroborate now.
        try server("resticsrv", "198.18.1.12", "rclone serve restic --config /tmp/none.conf --addr 198.18.1.12:8000 /srv/restic")
        try server("rsyncd", "198.18.1.13", "mkdir -p /srv/backup && rsync --daemon --no-detach --config=/conf/rsyncd.conf")
        try server("syslogsrv", "198.18.1.14", "mkdir -p /srv/log && rsyslogd -n -f /conf/rsyslog-server.conf -i /tmp/rsyslogd.pid")
        try server("broker", "198.18.1.15", "mosquitto -c /conf/mosquitto.conf")
        try server("gitd", "198.18.1.16", "git init -q --bare /srv/git/assets.git && git daemon --reuseaddr --base-path=/srv/git --export-all --enable=receive-pack --listen=198.18.1.16 /srv/git")
        try server("pgsrv", "198.18.1.17", options: ["--user", "999:999"],
                   "initdb -D /tmp/pg -U app --auth=trust >/tmp/initdb.log 2>&1 && postgres -D /tmp/pg -c listen_addresses=198.18.1.17 -c unix_socket_directories=/tmp -c hba_file=/conf/pg_hba.conf -c fsync=off")
        // vsftpd is not the container's first process: as pid 1 it exits on SIGSEGV when an FTP session ends.
        try server("ftpsrv", "198.18.1.18", "mkdir -p /srv/ftp/incoming /var/run/vsftpd/empty && chown ftp:ftp /srv/ftp/incoming && vsftpd /conf/vsftpd.conf")
        try server("iperfsrv", "198.18.1.19", "iperf3 -s -B 198.18.1.19")
        usleep(3_000_000)   // initdb takes a second or two; the psql client retries too
        for (role, id) in servers {
            #expect(Podman.inspect(id, "{{.State.Running}}") == "true", "server \(role) is not running: \((try? Podman.cmd(["logs", id])) ?? "")")
        }

        let (dump, pcapFile) = try lab.recordBridge(bridge)
        defer { dump.stop() }
        let (w1, noCapOut) = try lab.watch("nocap", seconds: 75, ["--no-capture"])
        let (w2, capOut) = try lab.watch("cap", seconds: 75, [])
        defer { w1.stop(); w2.stop() }
        usleep(1_500_000)

        // Clients at .30-.39, each bounded by timeout (about 65 s of upload).
        var clients: [(String, String)] = []
        // Clients run for about 68 s from their start; on a busy machine starting ten containers
        // takes a while, so the measuring window is fitted inside the first client's run.
        let clientsStarted = Date()
        func client(_ role: String, _ ip: String, options: [String] = [], _ command: [String]) throws {
            clients.append((role, try start(role, ip, options: options, command)))
        }
        try client("ffmpeg-hls", "198.18.1.30", ["timeout", "68", "ffmpeg", "-nostdin", "-loglevel", "warning", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25,noise=alls=25:allf=t", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "50", "-b:v", "2000k", "-maxrate", "2000k", "-bufsize", "1000k",
            "-c:a", "aac", "-b:a", "96k", "-f", "hls", "-hls_time", "2", "-hls_list_size", "6", "-method", "PUT", "-http_persistent", "1",
            "http://198.18.1.10/live/stream.m3u8"])
        try client("rclone", "198.18.1.31", ["timeout", "68", "rclone", "copy", "/payload/photos", ":webdav:/photos", "--config", "/tmp/none.conf",
            "--webdav-url", "http://198.18.1.11/", "--webdav-vendor", "other", "--bwlimit", "300k", "--transfers", "2", "--checkers", "2"])
        try client("restic", "198.18.1.32", options: ["-e", "RESTIC_PASSWORD=correct-horse-battery", "-e", "RESTIC_REPOSITORY=rest:http://198.18.1.12:8000/"],
                   ["timeout", "72", "sh", "-c", "restic init && restic backup --no-cache --limit-upload 300 /payload/backup"])
        try client("rsync", "198.18.1.33", ["timeout", "68", "rsync", "-a", "--bwlimit=300", "/payload/archives/", "rsync://198.18.1.13/backup/nightly/"])
        try client("rsyslog", "198.18.1.34", ["timeout", "75", "sh", "-c",
            "mkdir -p /tmp/rs /var/log/app && : > /var/log/app/access.log && rsyslogd -f /conf/rsyslog-client.conf -i /tmp/rs.pid && timeout 66 pv -qL 250k /payload/access.log.src >> /var/log/app/access.log; sleep 5"])
        // A camera's snapshots as JSON with the JPEG in base64, one message a line, over one
        // connection (QoS 1: each message is acknowledged). A mosquitto_pub per frame (a new
        // connection each, about 50 ms long) is invisible to watch's per-connection counters.
        try client("mosquitto-pub", "198.18.1.35", ["timeout", "68", "sh", "-c",
            "n=0; while [ $n -lt 3 ]; do for f in /payload/frames/*.jpg; do printf '{\"camera\":\"door-1\",\"ts\":%s,\"jpeg\":\"%s\"}\\n' \"$(date +%s)\" \"$(base64 -w0 \"$f\")\"; sleep 0.6; done; n=$((n+1)); done | mosquitto_pub -h 198.18.1.15 -i door-1 -t cameras/door-1/snapshot -q 1 -l"])
        // Batches of five photos a commit, pushed over a 2.4 Mbit/s uplink (git has no rate limit
        // of its own; tc's token bucket on the container's interface): a push lasts about 9 s.
        // Unlimited, each push is a connection of a few milliseconds that watch never sees.
        try client("git-push", "198.18.1.36", options: ["--cap-add", "NET_ADMIN"], ["timeout", "68", "sh", "-c",
            "tc qdisc add dev eth0 root tbf rate 2400kbit burst 32kb limit 4mb && cd /tmp && git init -q -b main repo && cd repo && git config user.email ci@example.org && git config user.name ci && git remote add origin git://198.18.1.16/assets.git && set -- /payload/photos/*.jpg && while [ $# -ge 5 ]; do cp \"$1\" \"$2\" \"$3\" \"$4\" \"$5\" . && shift 5 && git add -A && git commit -qm \"assets: $# to go\" && git push -q origin main; sleep 1; done"])
        try client("psql-copy", "198.18.1.37", ["timeout", "68", "sh", "-c",
            "for i in $(seq 1 20); do psql -q -h 198.18.1.17 -U app -d postgres -c 'create table readings(id bigint, sensor text, ts timestamp, value double precision, blob text)' && break; sleep 0.5; done; for f in /payload/csv/*.csv; do pv -qL 300k \"$f\" | psql -q -h 198.18.1.17 -U app -d postgres -c '\\copy readings from stdin with (format csv)'; done"])
        try client("curl-ftp", "198.18.1.38", ["timeout", "68", "curl", "-sS", "--limit-rate", "300k", "--ftp-create-dirs", "-T", "/payload/archives/dump-[01-30].gz",
            "ftp://198.18.1.18/incoming/"])
        try client("iperf3", "198.18.1.39", ["timeout", "90", "iperf3", "-c", "198.18.1.19", "-b", "2400k", "-t", "65"])

        // Each client's upload, from its namespace's interface counters, over 50 s.
        func counters(_ id: String) -> (tx: Double, rx: Double)? {
            let pid = Podman.inspect(id, "{{.State.Pid}}")
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/net/dev", encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.contains("eth0:") }) else { return nil }
            let f = line.split(separator: ":", maxSplits: 1)[1].split(separator: " ").compactMap { Double($0) }
            return f.count >= 9 ? (f[8], f[0]) : nil
        }
        usleep(2_000_000)
        let before = clients.map { counters($0.1) }
        let t0 = Date()
        let window = min(50, 64 - t0.timeIntervalSince(clientsStarted))
        try prerequisite(window >= 20, "the machine took \(Int(t0.timeIntervalSince(clientsStarted))) s to start the clients; too busy to measure")
        usleep(UInt32(window * 1_000_000))
        let after = clients.map { counters($0.1) }
        let seconds = Date().timeIntervalSince(t0)
        var measured: [String: String] = [:]
        for (i, (role, _)) in clients.enumerated() {
            guard let a = before[i], let b = after[i] else {
                Issue.record("\(role): no interface counters (exited early?)")
                continue
            }
            let tx = (b.tx - a.tx) / seconds, rx = (b.rx - a.rx) / seconds
            measured[role] = String(format: "%.0f kB/s up, %.1f kB/s down, %.0f:1", tx / 1000, rx / 1000, tx / max(rx, 1))
            #expect(tx >= 150_000 && tx <= 1_500_000 && tx >= 8 * rx, "\(role): \(measured[role] ?? "")")
        }
        for w in [w1, w2] { #expect(w.wait(seconds: 100) { !w.process.isRunning }, "watch did not finish") }
        dump.stop()
        if let keep = ProcessInfo.processInfo.environment["MW_KEEP_OUTPUT"] {
            for f in [noCapOut, capOut, pcapFile] { _ = try? TestSupport.run(["cp", f, keep]) }
        }

        // The servers really took the data, once every client ended (each is bounded by its
        // timeout; on a busy machine the last ones started late, and restic saves its snapshot last).
        _ = w1.wait(seconds: 90) { clients.allSatisfy { Podman.inspect($0.1, "{{.State.Running}}") != "true" } }
        func inServer(_ role: String, _ script: String) -> String {
            guard let id = servers.first(where: { $0.0 == role })?.1 else { return "" }
            return ((try? Podman.cmd(["exec", id, "sh", "-c", script])) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func number(_ s: String) -> Int { Int(s.split(separator: "\n").last.map(String.init) ?? "") ?? 0 }
        let accepted: [(String, Int, Int)] = [
            ("HLS segments", number(inServer("hlssrv", "ls /srv/www/live | grep -c '\\.ts$'")), 25),
            ("WebDAV photos", number(inServer("davsrv", "ls /srv/www/photos | wc -l")), 25),
            ("restic snapshots", number(inServer("resticsrv", "ls /srv/restic/snapshots | wc -l")), 1),
            ("rsync archives", number(inServer("rsyncd", "ls /srv/backup/nightly | wc -l")), 15),
            ("syslog lines", number(inServer("syslogsrv", "wc -l < /srv/log/remote.log")), 50_000),
            ("git commits", number(inServer("gitd", "git --git-dir=/srv/git/assets.git rev-list --count main")), 4),
            ("PostgreSQL rows", number(inServer("pgsrv", "psql -h /tmp -U app -d postgres -tAc 'select count(*) from readings'")), 25_000),
            ("FTP files", number(inServer("ftpsrv", "ls /srv/ftp/incoming | wc -l")), 15),
        ]
        for (what, n, least) in accepted { #expect(n >= least, "\(what): \(n) (at least \(least))") }
        let brokerLog = (try? Podman.cmd(["logs", servers.first { $0.0 == "broker" }?.1 ?? ""])) ?? ""
        let published = brokerLog.split(separator: "\n").filter { $0.contains("Received PUBLISH from door-1") }.count
        #expect(published >= 60, "the broker received \(published) snapshots")
        // iperf3 printed its summary when its 65 s were over (it ended above; its timeout leaves
        // 25 s for connecting and reporting on a loaded machine).
        let iperfClient = (try? Podman.cmd(["logs", clients.first { $0.0 == "iperf3" }?.1 ?? ""])) ?? ""
        #expect(iperfClient.contains("sender"), "iperf3: \(iperfClient.suffix(300))")

        // Nothing at medium or above for any client or server, in either watcher.
        let everyone = servers + clients
        for (file, label) in [(noCapOut, "no capture"), (capOut, "capture")] {
            let all = readAlerts(file)
            for (role, id) in everyone {
                let loud = all.filter { $0.containerID == id && ["medium", "high", "critical"].contains($0["severity"] as? String ?? "") }
                #expect(loud.isEmpty, "\(label): \(role) alerted: \(loud.map { "\($0["detector"] ?? "") \($0["summary"] ?? "")" })")
            }
        }

        // What the model saw of each client (capture watcher): peak outbound rates, upload-heavy trait.
        for (file, label) in [(noCapOut, "no capture"), (capOut, "capture")] {
            let records = readTelemetry(file)
            for (role, id) in clients {
                let mine = records.filter { $0.containerID == id }
                let tx = mine.compactMap { $0["outboundTxBytesPerSecond"] as? Double }.max() ?? 0
                let rx = mine.compactMap { $0["outboundRxBytesPerSecond"] as? Double }.max() ?? 0
                let heavy = mine.filter { ($0["traits"] as? [[String: Any]])?.contains { $0["name"] as? String == "upload-heavy" } == true }.count
                let low = readAlerts(file).filter { $0.containerID == id }.map { "\($0["severity"] ?? "") \($0["detector"] ?? "")" }
                print(String(format: "honest uploader (%@) %@: measured %@; model: peak out %.0f kB/s up, %.1f kB/s down, upload-heavy in %d of %d passes%@",
                             label, role, measured[role] ?? "?", tx / 1000, rx / 1000, heavy, mine.count, low.isEmpty ? "" : "; alerts below medium: \(low)"))
            }
        }

        // The same model in pcap, per address, on the recorded bridge.
        let r = try minewatch(["pcap", "-f", "json", pcapFile])
        let cap = try #require(((try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])?["captures"] as? [[String: Any]])?.first, "\(r.err)")
        let findings = cap["findings"] as? [[String: Any]] ?? []
        for (role, _) in everyone {
            guard let ip = ipOf[role] else { continue }
            let loud = findings.filter { ($0["path"] as? String).map { $0 == ip || $0.hasPrefix(ip + ":") } == true
                && ["medium", "high", "critical"].contains($0["severity"] as? String ?? "") }
            #expect(loud.isEmpty, "pcap: \(role) (\(ip)): \(loud.map { "\($0["ruleId"] ?? "") \($0["title"] ?? "")" })")
        }
    }
}
