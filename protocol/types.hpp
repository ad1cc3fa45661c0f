#pragma once
// Small vocabulary shared by the v1 wire types: timestamps, enums, header names and limits.

#include "common/error.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace distconv::protocol {

// Timestamps travel as RFC 3339 UTC strings with whole seconds ("2026-02-20T12:00:00Z").
using Timestamp = std::chrono::sys_seconds;

std::string format_timestamp(Timestamp t);
// Accepts "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)"; fractions are truncated, offsets applied.
std::optional<Timestamp> parse_timestamp(std::string_view text);

// Headers the contract names (see openapi.yaml).
inline constexpr std::string_view k_fencing_token_header = "X-Fencing-Token";
inline constexpr std::string_view k_upload_offset_header = "Upload-Offset";
inline constexpr std::string_view k_upload_length_header = "Upload-Length";
inline constexpr std::string_view k_idempotency_key_header = "Idempotency-Key";
inline constexpr std::string_view k_idempotent_replayed_header = "Idempotent-Replayed";
inline constexpr std::string_view k_api_prefix = "/api/v1";

// Placeholders in an assignment's ffmpeg_argv for the engine's local input and output.
inline constexpr std::string_view k_input_placeholder = "{input}";
inline constexpr std::string_view k_output_placeholder = "{output}";

inline constexpr int k_max_claim_wait_seconds = 60;
inline constexpr int k_max_list_limit = 500;
inline constexpr int k_default_list_limit = 50;

// source_corrupt: the source the engine received does not match its SHA-256 (the dispatch re-hashes
// its stored copy: a copy that changed on disk fails the job with SOURCE_CORRUPT, else it is retried).
// output_mismatch: ffmpeg exited 0 but its output is not what the stream plan asked for (too short,
// a planned stream missing or in another codec): permanent, the job fails with OUTPUT_MISMATCH.
enum class ErrorClass { Permanent, Transient, SourceCorrupt, OutputMismatch };
std::string_view to_string(ErrorClass c);
std::optional<ErrorClass> parse_error_class(std::string_view text);

enum class TransferMode { File, Stream };
std::string_view to_string(TransferMode m);
std::optional<TransferMode> parse_transfer_mode(std::string_view text);

// Engines report idle/busy/draining; the server marks an engine offline when heartbeats stop.
enum class EngineState { Idle, Busy, Draining, Offline };
std::string_view to_string(EngineState s);
std::optional<EngineState> parse_engine_state(std::string_view text);

// One attempt at a job (one assignment to one engine) is active while it holds the job; it ends
// completed, failed, canceled, lost (its lease expired or its engine went offline) or undelivered (the
// claim's answer never reached the engine; the attempt is not counted). The dispatch server records
// it; the wire's attempts carry no state.
enum class AttemptState { Active, Completed, Failed, Canceled, Lost, Undelivered };
std::string_view to_string(AttemptState s);
std::optional<AttemptState> parse_attempt_state(std::string_view text);

enum class ProgressPhase { Downloading, Transcoding, Uploading };
std::string_view to_string(ProgressPhase p);
std::optional<ProgressPhase> parse_progress_phase(std::string_view text);

enum class Role { Admin, User, Engine };
std::string_view to_string(Role r);
std::optional<Role> parse_role(std::string_view text);

// True for 64 lowercase hex digits, the form every SHA-256 takes on the wire.
bool is_sha256_hex(std::string_view text);

}  // namespace distconv::protocol
