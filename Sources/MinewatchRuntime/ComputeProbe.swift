import Foundation
import MinewatchCore
import MinewatchHost
import MinewatchModel

/// What the compute probe read of a container's busiest process in one pass.
public struct ComputeSignals: Sendable {
    public var pid: Int32
    public var exe: String?
    /// Saved MXCSR of its busiest threads, sampled this pass.
    public var mxcsr: [UInt32] = []
    /// Anonymous mappings the size of RandomX's cache (256 MiB) or fast-mode dataset (2080 MiB),
    /// mostly resident (from smaps).
    public var randomXMappings: [MemoryRegion] = []
    /// Anonymous executable mappings of at most 4 MiB: a JIT compiler's code buffer.
    public var jitMappings: [MemoryRegion] = []
    /// The probe samples this process (it is not at rest), whether or not this pass's wait
    /// budget reached it.
    public var sampling = false
    public init(pid: Int32, exe: String?) {
        self.pid = pid
        self.exe = exe
    }

    /// Whether this reading may still lead to RandomX's verdict: the process is being sampled
    /// (this pass or, when the budget ran out before it, the next), or it holds RandomX's memory
    /// shape. A process at rest (it kept rounding to nearest) with neither cannot be convicted
    /// until it is sampled again.
    public var mayConvict: Bool { sampling || !mxcsr.isEmpty || !randomXMappings.isEmpty }
}

/// Reads RandomX's run-time signature from the busiest process of a container that uses most of
/// its CPU, without eBPF: the rounding-mode bits of its hottest threads' saved MXCSR
/// (`FPUSampler`: a few ptrace samples, each stopping one thread for microseconds, never left
/// stopped) and the shape of its memory (/proc/<pid>/smaps, read at most every `smapsEvery`,
/// and only every `unchangedShapeEvery` while its address space keeps the size it had at a read
/// that found no mapping of RandomX's sizes).
/// Bounded: one process and `threads` threads per container, `samples` samples each, per pass;
/// a process whose samples keep rounding to nearest is left alone for a minute.
/// Used from the watcher's thread only (ptrace binds a tracee to the thread that seized it).
public final class ComputeProbe {
    let procRoot: String
    let fpu: FPUSampler?
    public var threads = 2
    public var samples = 3
    public var smapsEvery: TimeInterval = 5
    /// How long the memory shape of a process goes unread while its address-space size (from
    /// the stat the sampler reads anyway) is what it was at the last read, and that read found
    /// no mapping of RandomX's sizes: RandomX's cache or dataset cannot appear without mapping
    /// 256 MiB or 2 GiB more. Parsing /proc/<pid>/maps every `smapsEvery` for each container
    /// near its limit was the probe's main cost on a dense node.
    public var unchangedShapeEvery: TimeInterval = 60
    /// Longest a pass spends waiting for threads to stop (a thread of a throttled cgroup stops
    /// only when the cgroup runs again, up to a CFS period later; it was not running meanwhile).
    public var waitBudget: TimeInterval = 0.3
    var passStarted: Date?
    var waited: TimeInterval = 0
    /// Thread CPU ticks at the last probe, by tid.
    var threadTicks: [Int32: UInt64] = [:]
    /// What the probe remembers of one process (by pid and start time).
    struct Watched {
        /// The last smaps reading, when, and the address-space size then.
        var shapeAt: Date?
        var shapeVSize: UInt64 = 0
        var randomx: [MemoryRegion] = []
        var jit: [MemoryRegion] = []
        /// Whether the last read found a mapping of RandomX's sizes (resident or not yet).
        var sizedLikeRandomX = false
        /// Samples in a row that rounded to nearest, and until when the process is left alone
        /// after `quietAfter` of them (an honest busy program is not stopped again and again;
        /// RandomX changes mode several times a millisecond).
        var nearestRun = 0
        var restUntil: Date?
    }
    struct Key: Hashable {
        var pid: Int32
        var start: UInt64
    }
    var watched: [Key: Watched] = [:]
    public var quietAfter = 12
    public var quietFor: TimeInterval = 60

    public init(procRoot: String = "/proc", fpuSampling: Bool = true) {
        self.procRoot = procRoot
        fpu = fpuSampling && FPUSampler.supported ? FPUSampler() : nil
    }

    /// Total samples taken and how long they kept threads stopped (for metrics and benchmarks).
    public var fpuSamples: Int { fpu?.samples ?? 0 }
    public var fpuStoppedNanos: UInt64 { fpu?.stoppedNanos ?? 0 }

    /// RandomX's cache is 256 MiB (Argon2 memory of 262144 KiB); the dataset 2 GiB plus
    /// 33554368 bytes. Neighbouring anonymous mappings with the same flags merge into one VMA, so
    /// a little more is allowed; most of it must be resident (filled, not reserved).
    public static func isRandomXSized(_ r: MemoryRegion) -> Bool {
        guard let least = residentNeeded(r) else { return false }
        return ((r.rssKiB ?? 0) << 10) >= least
    }

    static let randomXCache: UInt64 = 256 << 20, randomXDataset: UInt64 = (2 << 30) + 33_554_368

    /// For an anonymous read-write mapping of RandomX's cache or dataset size, how much of it
    /// must be resident; nil for any other mapping (decided from /proc/<pid>/maps alone).
    static func residentNeeded(_ r: MemoryRegion) -> UInt64? {
        guard r.isAnonymous, r.readable, r.writable, !r.executable else { return nil }
        let slack: UInt64 = 4 << 20
        if r.size >= randomXCache && r.size <= randomXCache + slack { return randomXCache - (16 << 20) }
        if r.size >= randomXDataset && r.size <= randomXDataset + slack { return 1 << 30 }
        return nil
    }

    public static func isJIT(_ r: MemoryRegion) -> Bool { r.isAnonymous && r.executable && r.size <= 4 << 20 }

    /// Three 4 KiB pages of the mapping (at a quarter, half and three quarters) average at least
    /// 7.5 bits of entropy a byte.
    static func looksRandom(_ r: MemoryRegion, in mem: ProcessMemory) -> Bool {
        let page = 4096
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: page, alignment: 16)
        defer { buf.deallocate() }
        var total = 0.0
        for q in 1...3 {
            let at = r.start + (r.size / 4 * UInt64(q)) & ~UInt64(page - 1)
            guard mem.read(at: at, into: buf) == page else { return false }
            total += ByteHistogram(UnsafeRawBufferPointer(buf)).entropy
        }
        return total / 3 >= 7.5
    }

    /// Signals of the busiest process (most CPU since the last pass) of `snap`.
    public func probe(_ snap: ContainerSnapshot, now: Date) -> ComputeSignals? {
        if passStarted != now {
            passStarted = now
            waited = 0
        }
        let busiest = snap.processes.max { ($0.cpuCores ?? 0) < ($1.cpuCores ?? 0) }?.sample
        guard let s = busiest else { return nil }
        let key = Key(pid: s.pid, start: s.startTicks)
        var w = watched[key] ?? Watched()
        let unchanged = w.shapeVSize == s.vsize && s.vsize != 0 && !w.sizedLikeRandomX
        let shapeDue = w.shapeAt.map { now.timeIntervalSince($0) >= (unchanged ? unchangedShapeEvery : smapsEvery) } ?? true
        // Sampled unless at rest, or this pass already waited its budget out on other threads.
        let sampling = fpu != nil && (w.restUntil.map { now >= $0 } ?? true)
        let sampleDue = sampling && waited < waitBudget
        var out = ComputeSignals(pid: s.pid, exe: s.exe)
        out.sampling = sampling
        // Nothing due (a process at rest whose address space kept its size): its folder is not
        // even opened; what was read stands (a process that ended since this pass's listing is
        // given its last reading, at most `smapsEvery` old for one of RandomX's size).
        if shapeDue || sampleDue {
            guard let mem = ProcessMemory(procRoot: procRoot, pid: s.pid, startTicks: s.startTicks) else { return nil }
            if shapeDue { readShape(of: mem, into: &w, vsize: s.vsize, now: now) }
            if sampleDue, let fpu { out.mxcsr = sample(mem, fpu: fpu, into: &w, now: now) }
        }
        watched[key] = w
        out.randomXMappings = w.randomx
        out.jitMappings = w.jit
        return out
    }

    /// Reads the memory shape: maps first (no page-table walk); smaps, which counts every
    /// mapping's resident pages, only when a mapping has RandomX's size.
    func readShape(of mem: ProcessMemory, into w: inout Watched, vsize: UInt64, now: Date) {
        var regions = mem.maps()
        w.sizedLikeRandomX = regions.contains { Self.residentNeeded($0) != nil }
        if w.sizedLikeRandomX { regions = mem.smaps() }
        // RandomX's cache and dataset are Argon2 and AES output: random bytes. A heap of that
        // size (a JVM's, pre-touched) is not.
        w.randomx = regions.filter { Self.isRandomXSized($0) && Self.looksRandom($0, in: mem) }
        w.jit = regions.filter(Self.isJIT)
        w.shapeAt = now
        w.shapeVSize = vsize
    }

    /// MXCSR samples of the process's hottest threads, within this pass's wait budget; a process
    /// that keeps rounding to nearest is then left alone for `quietFor`.
    func sample(_ mem: ProcessMemory, fpu: FPUSampler, into w: inout Watched, now: Date) -> [UInt32] {
        var mxcsr: [UInt32] = []
        let list = mem.threads()
        let sampled = Self.threadsToSample(list.map { ($0.tid, $0.cpuTicks) }, known: threadTicks, count: threads)
        for t in list { threadTicks[t.tid] = t.cpuTicks }
        for tid in sampled {
            for _ in 0..<samples where waited < waitBudget {
                let started = DispatchTime.now().uptimeNanoseconds
                let x = fpu.sample(tid: tid)
                waited += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                guard let x else { break }
                mxcsr.append(x)
            }
        }
        // A thread a timed-out sample left seized (here or earlier this pass) is detached as soon
        // as it stopped; any still seized at the end of the pass, by `endPass`.
        fpu.reap()
        for x in mxcsr { w.nearestRun = FPUSampler.roundingMode(x) == 0 ? w.nearestRun + 1 : 0 }
        w.restUntil = w.nearestRun >= quietAfter ? now.addingTimeInterval(quietFor) : nil
        if w.restUntil != nil { w.nearestRun = 0 }
        return mxcsr
    }

    /// The threads to sample: of the `count` that used the most CPU since `known` (ticks by tid),
    /// those with at least a third of the hottest one's time. A thread id used again by a newer
    /// thread (pids wrap at pid_max, 32768 on many hosts) can have fewer ticks than the one
    /// remembered: it is counted from zero.
    static func threadsToSample(_ list: [(tid: Int32, cpuTicks: UInt64)], known: [Int32: UInt64], count: Int) -> [Int32] {
        func delta(_ t: (tid: Int32, cpuTicks: UInt64)) -> UInt64 {
            let before: UInt64 = known[t.tid] ?? 0
            return t.cpuTicks >= before ? t.cpuTicks - before : t.cpuTicks
        }
        let hottest = list.map { (tid: $0.tid, delta: delta($0)) }.filter { $0.delta > 0 }.sorted { $0.delta > $1.delta }.prefix(count)
        let top = hottest.first?.delta ?? 0
        return hottest.filter { $0.delta >= top / 3 + (top % 3 == 0 ? 0 : 1) }.map(\.tid)
    }

    /// Detaches any thread a timed-out sample left seized that has stopped since (called at the
    /// end of every pass, so one is never left stopped because nothing was probed after it).
    public func endPass() { fpu?.reap() }

    /// Whether it follows any process (else `retain` has nothing to forget).
    public var isWatching: Bool { !watched.isEmpty || !threadTicks.isEmpty }

    /// Forgets processes and threads no longer running.
    public func retain(pids: Set<Int32>) {
        watched = watched.filter { pids.contains($0.key.pid) }
        if threadTicks.count > 65536 { threadTicks.removeAll() }
    }
}

/// The RandomX verdict over what the probe read across passes: pure logic.
public enum RandomXEvidence {
    /// Samples needed before the rounding modes are judged.
    public static let minimumSamples = 6

    /// Why the samples look like RandomX: a third or more have a non-zero rounding mode (RandomX
    /// picks one of four at random, so three quarters do), and the mode changes (CFROUND);
    /// ordinary programs, JITs and numeric code keep round-to-nearest all the time.
    public static func rounding(_ mxcsr: [UInt32]) -> (nonZero: Int, modes: Set<UInt32>)? {
        guard mxcsr.count >= minimumSamples else { return nil }
        let modes = mxcsr.map(FPUSampler.roundingMode)
        let nonZero = modes.filter { $0 != 0 }.count
        let distinct = Set(modes)
        guard nonZero * 3 >= modes.count, distinct.count >= 2 else { return nil }
        return (nonZero, distinct)
    }

    /// The signals present, as evidence; empty when none.
    public static func evidence(mxcsr: [UInt32], shape: ComputeSignals?) -> [Evidence] {
        var ev: [Evidence] = []
        if let r = rounding(mxcsr) {
            let modes = r.modes.sorted().map(String.init).joined(separator: ",")
            let sample = mxcsr.suffix(4).map { "0x" + String($0, radix: 16) }.joined(separator: " ")
            ev.append(Evidence(kind: .attribute, name: "rounding modes",
                               value: "\(r.nonZero) of \(mxcsr.count) MXCSR samples of its hottest threads round away from nearest (modes \(modes); last \(sample)): RandomX's CFROUND"))
        }
        if let s = shape, let big = s.randomXMappings.first, !s.jitMappings.isEmpty {
            let mib = big.size >> 20
            let what = mib >= 2048 ? "fast-mode dataset" : "light-mode cache"
            ev.append(Evidence(kind: .attribute, name: "memory shape",
                               value: "\(mib) MiB anonymous mapping \(big.label) (\((big.rssKiB ?? 0) >> 10) MiB resident: RandomX's \(what)) and \(s.jitMappings.count) JIT code mapping(s)"))
        }
        return ev
    }
}
