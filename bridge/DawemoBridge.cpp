// dawemo Bridge: passes audio through unchanged, copies it with the host's transport into a
// shared-memory ring for dawemo, and plays dawemo's CC events out of its MIDI output.
// Layout and protocol: BridgeLayout.h. Licence: same as dawemo.
//
// run() never blocks, allocates, locks or waits for dawemo: it writes into the mapped rings and
// reads dawemo's MIDI ring with atomic loads and stores only. Segments are created, renamed and
// removed outside the audio thread (constructor, setState, destructor).
#include "DistrhoPlugin.hpp"
#include "BridgeLayout.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#ifdef _WIN32
# include <windows.h>
#else
# include <fcntl.h>
# include <signal.h>
# include <sys/mman.h>
# include <sys/stat.h>
# include <unistd.h>
#endif

#ifdef DAWEMO_BRIDGE_TIMING
# include <chrono>
#endif

START_NAMESPACE_DISTRHO

using namespace dawemo_bridge;

#if defined(DISTRHO_PLUGIN_TARGET_VST3)
static const char* const kFormat = "VST3";
#elif defined(DISTRHO_PLUGIN_TARGET_CLAP)
static const char* const kFormat = "CLAP";
#elif defined(DISTRHO_PLUGIN_TARGET_LV2)
static const char* const kFormat = "LV2";
#else
static const char* const kFormat = "other";
#endif

static int64_t monotonicNs() noexcept {
#ifdef _WIN32
    LARGE_INTEGER counter, frequency;
    QueryPerformanceCounter(&counter);
    QueryPerformanceFrequency(&frequency);
    return int64_t(double(counter.QuadPart) * 1e9 / double(frequency.QuadPart));
#else
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call, real-time safe
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
#endif
}

static int64_t currentPid() {
#ifdef _WIN32
    return int64_t(GetCurrentProcessId());
#else
    return int64_t(getpid());
#endif
}

static bool processAlive(int64_t pid) {
#ifdef _WIN32
    HANDLE process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, DWORD(pid));
    if (process == nullptr) return false;
    DWORD code = 0;
    const bool alive = GetExitCodeProcess(process, &code) && code == STILL_ACTIVE;
    CloseHandle(process);
    return alive;
#else
    return pid > 0 && (kill(pid_t(pid), 0) == 0 || errno == EPERM);
#endif
}

// One mapped segment. Never unmapped while the plugin may still run() with it.
struct Segment {
    Header* header = nullptr;
    char name[kNameSize] = {};
    char shmName[kNameSize + 32] = {};
#ifdef _WIN32
    HANDLE mapping = nullptr;
#else
    int fd = -1;
#endif
    float* channel(uint32_t c) const { return reinterpret_cast<float*>(reinterpret_cast<char*>(header) + kAudioOffset) + size_t(c) * kAudioCapacity; }
    TransportRecord* transport() const { return reinterpret_cast<TransportRecord*>(reinterpret_cast<char*>(header) + kTransportOffset); }
    MidiRecord* midi() const { return reinterpret_cast<MidiRecord*>(reinterpret_cast<char*>(header) + kMidiOffset); }
    uint32_t* costs() const { return reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(header) + kCostOffset); }
};

// Letters, digits, '.', '_' and '-' kept, anything else becomes '-', at most kMaxNameLength.
static void sanitizeName(const char* in, char* out) {
    size_t n = 0;
    for (; in != nullptr && *in != '\0' && n < kMaxNameLength; ++in) {
        const char ch = *in;
        const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                        || ch == '.' || ch == '_' || ch == '-';
        out[n++] = ok ? ch : '-';
    }
    out[n] = '\0';
}

static void initHeader(Header* h, const char* name, double sampleRate) {
    h->version = DAWEMO_BRIDGE_LAYOUT_VERSION;
    h->header_size = kHeaderSize;
    h->channels = kChannels;
    h->audio_capacity = kAudioCapacity;
    h->transport_capacity = kTransportCapacity;
    h->midi_capacity = kMidiCapacity;
    h->audio_offset = kAudioOffset;
    h->transport_offset = kTransportOffset;
    h->midi_offset = kMidiOffset;
    h->total_size = kTotalSize;
    h->owner_pid = currentPid();
    h->instance_id = (uint64_t(monotonicNs()) * 6364136223846793005ull) ^ (uint64_t(h->owner_pid) << 32)
                     ^ uint64_t(reinterpret_cast<uintptr_t>(h));
    std::strncpy(h->name, name, kNameSize - 1);
    std::strncpy(h->format, kFormat, sizeof(h->format) - 1);
    h->cost_offset = kCostOffset;
    h->cost_capacity = kCostCapacity;
    h->sample_rate = sampleRate;
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(h->magic, DAWEMO_BRIDGE_MAGIC, 8);  // last: a reader sees a complete header or none
}

// Create the segment "<prefix><name>"; nullptr when a live instance holds that name.
static Segment* createSegment(const char* name, double sampleRate) {
    Segment* seg = new Segment();
    std::strncpy(seg->name, name, kNameSize - 1);
#ifdef _WIN32
    std::snprintf(seg->shmName, sizeof(seg->shmName), DAWEMO_BRIDGE_SHM_PREFIX "%s", name);
    seg->mapping = CreateFileMappingA(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, 0, DWORD(kTotalSize), seg->shmName);
    if (seg->mapping == nullptr || GetLastError() == ERROR_ALREADY_EXISTS) {  // the name is taken
        if (seg->mapping != nullptr) CloseHandle(seg->mapping);
        delete seg;
        return nullptr;
    }
    void* memory = MapViewOfFile(seg->mapping, FILE_MAP_ALL_ACCESS, 0, 0, size_t(kTotalSize));
    if (memory == nullptr) { CloseHandle(seg->mapping); delete seg; return nullptr; }
    std::memset(memory, 0, size_t(kTotalSize));
#else
    std::snprintf(seg->shmName, sizeof(seg->shmName), "/" DAWEMO_BRIDGE_SHM_PREFIX "%s", name);
    for (int attempt = 0; attempt < 2; ++attempt) {
        seg->fd = shm_open(seg->shmName, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (seg->fd >= 0 || errno != EEXIST) break;
        // Taken: by a live instance (keep looking), or left behind by a crashed host (take over).
        const int old = shm_open(seg->shmName, O_RDONLY, 0);
        bool stale = true;
        if (old >= 0) {
            struct stat st;
            if (fstat(old, &st) == 0 && size_t(st.st_size) >= sizeof(Header)) {
                void* view = mmap(nullptr, sizeof(Header), PROT_READ, MAP_SHARED, old, 0);
                if (view != MAP_FAILED) {
                    const Header* h = static_cast<const Header*>(view);
                    if (std::memcmp(h->magic, DAWEMO_BRIDGE_MAGIC, 8) == 0)
                        stale = !processAlive(h->owner_pid) || (h->state.load() & kStateClosed) != 0;
                    munmap(view, sizeof(Header));
                }
            } else if (fstat(old, &st) == 0 && st.st_size == 0) {
                stale = false;  // another instance is creating it right now
            }
            close(old);
        }
        if (!stale) break;
        shm_unlink(seg->shmName);
    }
    if (seg->fd < 0) { delete seg; return nullptr; }
    void* memory = MAP_FAILED;
    if (ftruncate(seg->fd, off_t(kTotalSize)) == 0)
        memory = mmap(nullptr, size_t(kTotalSize), PROT_READ | PROT_WRITE, MAP_SHARED, seg->fd, 0);
    if (memory == MAP_FAILED) {
        shm_unlink(seg->shmName);
        close(seg->fd);
        delete seg;
        return nullptr;
    }
    mlock(memory, size_t(kTotalSize));  // best effort: no page faults on the audio thread
#endif
    seg->header = static_cast<Header*>(memory);
    initHeader(seg->header, name, sampleRate);
    return seg;
}

// Mark closed and remove the name; the mapping itself stays until unmapSegment.
static void closeSegment(Segment* seg) {
    seg->header->state.fetch_or(kStateClosed);
#ifndef _WIN32
    shm_unlink(seg->shmName);
#endif
}

static void unmapSegment(Segment* seg) {
#ifdef _WIN32
    UnmapViewOfFile(seg->header);
    CloseHandle(seg->mapping);
#else
    munmap(seg->header, size_t(kTotalSize));
    close(seg->fd);
#endif
    delete seg;
}

// The requested name (sanitized; empty: $DAWEMO_BRIDGE_NAME, else "bridge") and, when taken by a
// live instance, the same with -2, -3... Default names are always numbered: bridge-1, bridge-2...
static Segment* openNamed(const char* requested, double sampleRate) {
    char base[kNameSize];
    sanitizeName(requested, base);
    bool numbered = false;
    if (base[0] == '\0') {
        const char* env = std::getenv("DAWEMO_BRIDGE_NAME");
        sanitizeName(env != nullptr && env[0] != '\0' ? env : "bridge", base);
        numbered = true;
    }
    char name[kNameSize];
    for (int n = 1; n < 1000; ++n) {
        if (n == 1 && !numbered)
            std::snprintf(name, sizeof(name), "%s", base);
        else
            std::snprintf(name, sizeof(name), "%.*s-%d", int(kMaxNameLength - 4), base, n);
        if (Segment* seg = createSegment(name, sampleRate)) return seg;
    }
    return nullptr;
}

class DawemoBridge : public Plugin {
public:
    DawemoBridge() : Plugin(0, 0, 1), fRequested() {
        fSegment.store(openNamed("", getSampleRate()));
        if (fSegment.load() == nullptr)
            d_stderr2("dawemo Bridge: cannot create its shared memory; audio passes through, nothing reaches dawemo");
    }

    ~DawemoBridge() override {
        if (Segment* seg = fSegment.exchange(nullptr)) { closeSegment(seg); unmapSegment(seg); }
        for (uint32_t i = 0; i < fRetiredCount; ++i) unmapSegment(fRetired[i]);
    }

protected:
    const char* getLabel() const override { return "DawemoBridge"; }
    const char* getDescription() const override {
        return "Sends this track's audio and the host's transport to dawemo and plays dawemo's CC "
               "automation out of its MIDI output. Audio passes through unchanged.";
    }
    const char* getMaker() const override { return "dawemo"; }
    const char* getHomePage() const override { return "https://github.com/dawemo/dawemo"; }
    const char* getLicense() const override { return "MIT"; }
    uint32_t getVersion() const override { return d_version(1, 0, 0); }
    int64_t getUniqueId() const override { return d_cconst('d', 'w', 'B', 'r'); }

    void initState(uint32_t, State& state) override {
        state.key = "name";
        state.label = "Instance name";
        state.defaultValue = "";
        state.hints = kStateIsHostWritable;
    }

    String getState(const char*) const override { return String(fRequested); }

    // Not on the audio thread (DPF and the formats call it from the host's main or worker thread).
    void setState(const char* key, const char* value) override {
        if (std::strcmp(key, "name") != 0) return;
        char wanted[kNameSize];
        sanitizeName(value, wanted);
        std::strncpy(fRequested, value != nullptr ? value : "", sizeof(fRequested) - 1);
        Segment* current = fSegment.load();
        if (current != nullptr && wanted[0] != '\0' && std::strcmp(current->name, wanted) == 0) return;
        if (current != nullptr && wanted[0] == '\0') return;  // default name: keep the numbered one
        if (fRetiredCount == kMaxRetired) return;  // renamed too often: keep the current name
        Segment* next = openNamed(value, getSampleRate());
        if (next == nullptr) return;
        if (current != nullptr) {
            // Carry the stream's state over so the new segment's first block is a clean start.
            next->header->sample_rate = current->header->sample_rate;
            next->header->max_block = current->header->max_block;
            next->header->state.store(current->header->state.load() & kStateActive);
            next->header->epoch.store(1);
        }
        Segment* old = fSegment.exchange(next);
        if (old != nullptr) {
            closeSegment(old);
            fRetired[fRetiredCount++] = old;  // run() may still hold it: unmapped in the destructor
        }
    }

    void activate() override {
        if (Segment* seg = fSegment.load()) {
            Header* h = seg->header;
            h->sample_rate = getSampleRate();
            h->max_block = getBufferSize();
            h->epoch_start_frame.store(h->audio_write.load(std::memory_order_relaxed), std::memory_order_relaxed);
            h->epoch.fetch_add(1, std::memory_order_release);
            h->state.fetch_or(kStateActive);
        }
    }

    void deactivate() override {
        if (Segment* seg = fSegment.load()) seg->header->state.fetch_and(~uint32_t(kStateActive));
    }

    void run(const float** inputs, float** outputs, uint32_t frames) override {
#ifdef DAWEMO_BRIDGE_TIMING
        const auto started = std::chrono::steady_clock::now();
#endif
        Segment* const seg = fSegment.load(std::memory_order_acquire);
        if (seg != nullptr) capture(seg, inputs, frames);
        for (uint32_t c = 0; c < DISTRHO_PLUGIN_NUM_OUTPUTS; ++c)
            if (outputs[c] != inputs[c]) std::memcpy(outputs[c], inputs[c], sizeof(float) * frames);
        if (seg != nullptr) emitMidi(seg);
#ifdef DAWEMO_BRIDGE_TIMING
        if (seg != nullptr) {
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started).count();
            Header* h = seg->header;
            const uint64_t n = h->cost_write.load(std::memory_order_relaxed);
            seg->costs()[n % kCostCapacity] = uint32_t(ns);
            h->cost_write.store(n + 1, std::memory_order_release);
        }
#endif
    }

private:
    void capture(Segment* seg, const float** inputs, uint32_t frames) noexcept {
        Header* const h = seg->header;
        const uint64_t w = h->audio_write.load(std::memory_order_relaxed);  // only this thread writes it

        const TimePosition& pos = getTimePosition();
        const uint64_t t = h->transport_write.load(std::memory_order_relaxed);
        TransportRecord& rec = seg->transport()[t % kTransportCapacity];
        rec.frame = w;
        rec.host_frame = pos.frame;
        rec.mono_ns = monotonicNs();
        rec.sample_rate = getSampleRate();
        rec.bpm = pos.bbt.beatsPerMinute;
        rec.tick = pos.bbt.tick;
        rec.bar_start_tick = pos.bbt.barStartTick;
        rec.ticks_per_beat = pos.bbt.ticksPerBeat;
        rec.bar = pos.bbt.bar;
        rec.beat = pos.bbt.beat;
        rec.beats_per_bar = pos.bbt.beatsPerBar;
        rec.beat_type = pos.bbt.beatType;
        rec.frames = frames;
        rec.flags = (pos.playing ? kTransportPlaying : 0u) | (pos.bbt.valid ? kTransportBbtValid : 0u);
        rec.epoch = h->epoch.load(std::memory_order_relaxed);
        h->transport_write.store(t + 1, std::memory_order_release);

        // A block longer than the ring keeps its last kAudioCapacity frames (the reader counts the rest).
        const uint32_t skip = frames > kAudioCapacity ? frames - kAudioCapacity : 0;
        const uint64_t start = w + skip;
        const uint32_t n = frames - skip;
        const uint32_t at = uint32_t(start % kAudioCapacity);
        const uint32_t first = n < kAudioCapacity - at ? n : kAudioCapacity - at;
        for (uint32_t c = 0; c < kChannels; ++c) {
            const float* src = inputs[c < DISTRHO_PLUGIN_NUM_INPUTS ? c : 0] + skip;
            float* ring = seg->channel(c);
            std::memcpy(ring + at, src, sizeof(float) * first);
            if (n > first) std::memcpy(ring, src + first, sizeof(float) * (n - first));
        }
        h->audio_write.store(w + frames, std::memory_order_release);
        h->plugin_run_ns.store(rec.mono_ns, std::memory_order_relaxed);
    }

    void emitMidi(Segment* seg) noexcept {
        Header* const h = seg->header;
        uint64_t r = h->midi_read.load(std::memory_order_relaxed);  // only this thread writes it
        const uint64_t w = h->midi_write.load(std::memory_order_acquire);
        if (w < r) {  // a new dawemo started its counter below ours: follow it
            h->midi_read.store(w, std::memory_order_release);
            return;
        }
        if (w - r > kMidiCapacity) r = w - kMidiCapacity;  // cannot happen with a well-behaved writer
        uint64_t emitted = 0;
        MidiEvent event;
        event.frame = 0;
        event.dataExt = nullptr;
        for (uint32_t n = 0; r < w && n < kMaxMidiPerBlock; ++n) {
            const MidiRecord& m = seg->midi()[r % kMidiCapacity];
            event.size = m.size >= 1 && m.size <= 3 ? m.size : 3;
            event.data[0] = m.data[0];
            event.data[1] = m.data[1];
            event.data[2] = m.data[2];
            event.data[3] = 0;
            if (!writeMidiEvent(event)) {
                h->midi_host_refused.fetch_add(1, std::memory_order_relaxed);
                break;  // the host's buffer is full: the rest leave in the next block
            }
            ++r;
            ++emitted;
        }
        h->midi_read.store(r, std::memory_order_release);
        if (emitted != 0) h->midi_emitted.fetch_add(emitted, std::memory_order_relaxed);
    }

    static constexpr uint32_t kMaxRetired = 16;
    std::atomic<Segment*> fSegment{nullptr};
    Segment* fRetired[kMaxRetired] = {};
    uint32_t fRetiredCount = 0;
    char fRequested[kNameSize];

    DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(DawemoBridge)
};

Plugin* createPlugin() { return new DawemoBridge(); }

END_NAMESPACE_DISTRHO
