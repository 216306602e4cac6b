/*
 * dawemo Bridge shared-memory layout, version 1. THE reference for both sides:
 * the plugin (bridge/DawemoBridge.cpp) writes it, dawemo (dawemo/inputs/bridge_shm.py) reads it,
 * and tests/test_daw_bridge_layout.py checks that the Python offsets equal the ones below.
 *
 * One segment per plugin instance, created and owned by the plugin:
 *   POSIX:   shm_open("/dawemo-bridge-<name>") (Linux: /dev/shm/dawemo-bridge-<name>), mode 0600
 *   Windows: CreateFileMapping(..., "dawemo-bridge-<name>") in the session's Local namespace
 * <name> is the instance name: [A-Za-z0-9._-], at most 40 characters.
 *
 *   [0, 4096)                       Header (below)
 *   [audio_offset, +2*cap*4)        audio: 2 planar float32 rings of audio_capacity frames
 *   [transport_offset, +n*96)       TransportRecord ring: one record per host block
 *   [midi_offset, +n*16)            MidiRecord ring: dawemo -> plugin
 *   [cost_offset, +n*4)             uint32 ns per run() call (only builds with -DDAWEMO_BRIDGE_TIMING)
 *
 * Counters are monotonic uint64 (never wrap in practice); slot = counter % capacity.
 * Each ring has exactly one producer and one consumer:
 *   audio + transport: producer plugin (audio thread), consumer dawemo. The plugin never looks at
 *     the consumer: it overwrites. The consumer detects overrun by audio_write - read > capacity
 *     (and re-checks audio_write after copying) and counts the frames lost as a gap.
 *   MIDI: producer dawemo, consumer plugin. dawemo writes only while midi_write - midi_read <
 *     midi_capacity (else drops and counts midi_dropped); the plugin emits at most
 *     kMaxMidiPerBlock events per block, at frame 0, and stores midi_read.
 * Publication: the producer fills slots, then stores the counter with release order; the consumer
 * loads the counter (acquire) before reading slots.
 * Liveness: plugin_run_ns (CLOCK_MONOTONIC ns of the latest run()) and reader_heartbeat_ns
 * (dawemo's, same clock) let each side see the other; owner_pid tells a crashed host's stale
 * segment (a new instance of the same name takes it over).
 * Streams: each activate() (start, restart, new sample rate or block size) stores
 * epoch_start_frame = audio_write and sample_rate, then increments epoch.
 * A change of this layout increments DAWEMO_BRIDGE_LAYOUT_VERSION; readers refuse other versions.
 */
#ifndef DAWEMO_BRIDGE_LAYOUT_H_INCLUDED
#define DAWEMO_BRIDGE_LAYOUT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <atomic>

#define DAWEMO_BRIDGE_MAGIC          "DAWEMOBR"
#define DAWEMO_BRIDGE_LAYOUT_VERSION 1
#define DAWEMO_BRIDGE_SHM_PREFIX     "dawemo-bridge-"

namespace dawemo_bridge {

enum : uint32_t {
    kHeaderSize        = 4096,
    kChannels          = 2,
    kAudioCapacity     = 1u << 17,  // frames per channel: 2.7 s at 48 kHz
    kTransportCapacity = 512,
    kMidiCapacity      = 1024,
    kCostCapacity      = 4096,
    kNameSize          = 64,
    kMaxNameLength     = 40,
    kMaxMidiPerBlock   = 256,
};

enum : uint32_t {  // TransportRecord::flags
    kTransportPlaying  = 1u << 0,
    kTransportBbtValid = 1u << 1,
};

enum : uint32_t {  // Header::state
    kStateActive = 1u << 0,  // between activate() and deactivate()
    kStateClosed = 1u << 1,  // the plugin let go of this segment (destroyed or renamed)
};

struct TransportRecord {     // 96 bytes, one per run() call
    uint64_t frame;          //  0 audio_write at the start of this block
    uint64_t host_frame;     //  8 host's song position in frames
    int64_t  mono_ns;        // 16 CLOCK_MONOTONIC ns when run() began
    double   sample_rate;    // 24
    double   bpm;            // 32 beats per minute (valid with kTransportBbtValid)
    double   tick;           // 40 tick within the beat
    double   bar_start_tick; // 48
    double   ticks_per_beat; // 56
    int32_t  bar;            // 64 1-based
    int32_t  beat;           // 68 1-based
    float    beats_per_bar;  // 72 time signature numerator
    float    beat_type;      // 76 time signature denominator
    uint32_t frames;         // 80 block length
    uint32_t flags;          // 84 kTransport*
    uint64_t epoch;          // 88 Header::epoch during this block
};

struct MidiRecord {          // 16 bytes
    uint64_t cause_frame;    //  0 dawemo's audio read position when it made the event (latency)
    uint32_t reserved;       //  8
    uint8_t  size;           // 12 1..3
    uint8_t  data[3];        // 13
};

struct Header {
    // --- written once at creation (plugin), magic last ---------------------------------------
    char     magic[8];                            //    0 "DAWEMOBR"
    uint32_t version;                             //    8 DAWEMO_BRIDGE_LAYOUT_VERSION
    uint32_t header_size;                         //   12
    uint32_t channels;                            //   16
    uint32_t audio_capacity;                      //   20
    uint32_t transport_capacity;                  //   24
    uint32_t midi_capacity;                       //   28
    uint64_t audio_offset;                        //   32
    uint64_t transport_offset;                    //   40
    uint64_t midi_offset;                         //   48
    uint64_t total_size;                          //   56
    int64_t  owner_pid;                           //   64 the host process
    uint64_t instance_id;                         //   72 random, new for every segment
    char     name[kNameSize];                     //   80 instance name, NUL-terminated
    char     format[16];                          //  144 "VST3", "CLAP", "LV2"
    uint64_t cost_offset;                         //  160
    uint32_t cost_capacity;                       //  168
    uint32_t reserved0;                           //  172
    uint8_t  pad0[256 - 176];
    // --- written by the plugin ---------------------------------------------------------------
    std::atomic<uint64_t> audio_write;            //  256 frames written, per channel
    std::atomic<uint64_t> transport_write;        //  264 records written
    std::atomic<uint64_t> epoch;                  //  272 activations so far
    std::atomic<uint64_t> epoch_start_frame;      //  280 audio_write at the latest activation
    std::atomic<int64_t>  plugin_run_ns;          //  288 CLOCK_MONOTONIC ns of the latest run()
    std::atomic<uint64_t> midi_read;              //  296 MIDI records consumed
    std::atomic<uint64_t> midi_emitted;           //  304 MIDI events handed to the host
    std::atomic<uint64_t> midi_host_refused;      //  312 writeMidiEvent() said no (retried next block)
    std::atomic<uint32_t> state;                  //  320 kState*
    uint32_t              max_block;              //  324 host's maximum block size
    double                sample_rate;            //  328 of the current epoch
    std::atomic<uint64_t> cost_write;             //  336 cost entries written
    uint8_t  pad1[512 - 344];
    // --- written by dawemo -------------------------------------------------------------------
    std::atomic<uint64_t> midi_write;             //  512 MIDI records written
    std::atomic<int64_t>  reader_heartbeat_ns;    //  520 CLOCK_MONOTONIC ns, at least every 100 ms
    std::atomic<int64_t>  reader_pid;             //  528 0 when none
    std::atomic<uint64_t> reader_frames;          //  536 audio read position
    std::atomic<uint64_t> reader_gap_frames;      //  544 frames the reader lost (overrun, restarts)
    std::atomic<uint64_t> midi_dropped;           //  552 events dropped because the MIDI ring was full
    uint8_t  pad2[kHeaderSize - 560];
};

static_assert(sizeof(TransportRecord) == 96, "TransportRecord layout");
static_assert(sizeof(MidiRecord) == 16, "MidiRecord layout");
static_assert(sizeof(Header) == kHeaderSize, "Header layout");
static_assert(offsetof(Header, audio_write) == 256, "Header layout");
static_assert(offsetof(Header, midi_write) == 512, "Header layout");
static_assert(offsetof(Header, midi_dropped) == 552, "Header layout");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "64-bit atomics must be lock-free");

constexpr uint64_t kAudioOffset     = kHeaderSize;
constexpr uint64_t kTransportOffset = kAudioOffset + uint64_t(kChannels) * kAudioCapacity * sizeof(float);
constexpr uint64_t kMidiOffset      = kTransportOffset + uint64_t(kTransportCapacity) * sizeof(TransportRecord);
constexpr uint64_t kCostOffset      = kMidiOffset + uint64_t(kMidiCapacity) * sizeof(MidiRecord);
constexpr uint64_t kTotalSize       = kCostOffset + uint64_t(kCostCapacity) * sizeof(uint32_t);

}  // namespace dawemo_bridge

#endif
