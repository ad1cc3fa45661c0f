#include "common/media/stream_plan.hpp"
#include "common/media/input_policy.hpp"

#include <algorithm>
#include <cmath>
#include <map>

namespace distconv::media {
namespace {

using nlohmann::json;

bool one_of(std::string_view v, std::initializer_list<std::string_view> list) {
    return std::find(list.begin(), list.end(), v) != list.end();
}

bool is_text_subtitle(std::string_view c) {
    return one_of(c, {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"});
}
bool is_bitmap_subtitle(std::string_view c) {
    return one_of(c, {"hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle", "xsub"});
}

// ISO 639: the two-letter code and the bibliographic and terminology three-letter codes of the
// languages libraries most often hold, so "fr", "fre" and "fra" select the same track.
const std::vector<std::vector<std::string_view>>& language_groups() {
    static const std::vector<std::vector<std::string_view>> groups = {
        {"en", "eng"},        {"fr", "fre", "fra"}, {"de", "ger", "deu"}, {"es", "spa"},
        {"it", "ita"},        {"pt", "por"},        {"nl", "dut", "nld"}, {"ru", "rus"},
        {"ja", "jpn"},        {"zh", "chi", "zho"}, {"ko", "kor"},        {"ar", "ara"},
        {"hi", "hin"},        {"pl", "pol"},        {"sv", "swe"},        {"da", "dan"},
        {"no", "nor"},        {"nb", "nob"},        {"fi", "fin"},        {"cs", "cze", "ces"},
        {"el", "gre", "ell"}, {"hu", "hun"},        {"tr", "tur"},        {"he", "heb"},
        {"ro", "rum", "ron"}, {"sk", "slo", "slk"}, {"uk", "ukr"},        {"fa", "per", "fas"},
        {"th", "tha"},        {"vi", "vie"},        {"id", "ind"},        {"ms", "may", "msa"},
        {"is", "ice", "isl"}, {"cy", "wel", "cym"}, {"ca", "cat"},        {"hr", "hrv"},
        {"sr", "srp"},        {"bg", "bul"},        {"et", "est"},        {"lv", "lav"},
        {"lt", "lit"}};
    return groups;
}

bool same_language(std::string_view wanted, std::string_view tagged) {
    if (wanted == tagged) return true;
    for (const auto& g : language_groups())
        if (std::find(g.begin(), g.end(), wanted) != g.end() &&
            std::find(g.begin(), g.end(), tagged) != g.end())
            return true;
    return false;
}

// What ffprobe calls what an encoder writes.
std::string codec_name_of(std::string_view encoder) {
    static const std::map<std::string_view, std::string_view> names = {
        {"libx264", "h264"},   {"libx265", "hevc"},      {"libvpx", "vp8"},     {"libvpx-vp9", "vp9"},
        {"libaom-av1", "av1"}, {"libsvtav1", "av1"},     {"mpeg4", "mpeg4"},    {"aac", "aac"},
        {"libopus", "opus"},   {"libvorbis", "vorbis"},  {"libmp3lame", "mp3"}, {"flac", "flac"},
        {"ac3", "ac3"},        {"mov_text", "mov_text"}, {"webvtt", "webvtt"},  {"srt", "subrip"}};
    auto it = names.find(encoder);
    return it == names.end() ? std::string(encoder) : std::string(it->second);
}

// The source's languages (or "untagged") for an error that says what the source has.
json languages_of(const ProbeInfo& p, std::string_view type) {
    json out = json::array();
    for (const auto& s : p.streams)
        if (s.codec_type == type) out.push_back(s.language.empty() ? "untagged" : s.language);
    return out;
}

std::string describe(const PlannedStream& s) {
    std::string d = "#" + std::to_string(s.index) + " " + s.type + " " + (s.codec.empty() ? "?" : s.codec);
    if (!s.language.empty()) d += " (" + s.language + ")";
    return d;
}

bool valid_tag(const std::string& v) {
    return !v.empty() && v != "unknown" && v != "reserved" && v != "unspecified";
}

bool ten_bit(const std::string& pix_fmt) {
    return pix_fmt.find("10") != std::string::npos || pix_fmt.find("12") != std::string::npos;
}

// Orders the kept streams of one type by the selection's language order (stable within one).
std::vector<int> selected(const std::vector<PlannedStream>& all, const std::vector<int>& of_type,
                          const std::optional<std::vector<std::string>>& languages) {
    if (!languages) return of_type;
    std::vector<int> out;
    for (const auto& want : *languages)
        for (int i : of_type)
            if (!all[i].language.empty() && same_language(want, all[i].language) &&
                std::find(out.begin(), out.end(), i) == out.end())
                out.push_back(i);
    return out;
}

}  // namespace

std::string_view to_string(StreamAction a) {
    switch (a) {
        case StreamAction::Encode:
            return "encode";
        case StreamAction::Copy:
            return "copy";
        case StreamAction::Convert:
            return "convert";
        case StreamAction::Drop:
            return "drop";
    }
    return "drop";
}

const PlannedStream* StreamPlan::main_video() const {
    for (int i : output_order)
        if (streams[i].type == "video" &&
            !std::count(streams[i].disposition.begin(), streams[i].disposition.end(), "attached_pic"))
            return &streams[i];
    return nullptr;
}

Result<StreamPlan> plan_streams(const JobOptions& o, const ProbeInfo& src) {
    const std::string container = o.container.value_or("mp4");
    const std::string vcodec = o.video.codec.value_or("libx264");
    const std::string acodec = o.audio.codec.value_or("aac");
    const bool mp4_family = one_of(container, {"mp4", "mov", "m4a"});
    const bool matroska = container == "mkv";
    const bool audio_only = is_audio_only_container(container);
    const bool one_audio = one_of(container, {"mp3", "flac"});
    const std::string upper =
        container == "mkv"   ? "MKV"
        : container == "m4a" ? "M4A"
                             : [&] {
                                   std::string u = container;
                                   for (auto& c : u)
                                       c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                                   return u;
                               }();

    StreamPlan plan;
    std::vector<int> audio, subtitles;
    bool main_video_found = false;
    for (const auto& s : src.streams) {
        PlannedStream p;
        p.index = s.index;
        p.type = s.codec_type.empty() ? "data" : s.codec_type;
        p.codec = s.codec_name;
        p.language = s.language;
        p.title = s.title;
        p.disposition = s.disposition;
        const int at = static_cast<int>(plan.streams.size());
        if (p.type == "video" && s.has_disposition("attached_pic")) {
            if (one_of(container, {"mp4", "mov", "m4a", "mp3", "flac"})) {
                p.action = StreamAction::Copy;
                p.encoder = "copy";
                p.reason = "cover art, copied";
            } else {
                p.reason = upper + " cannot hold cover art";
            }
        } else if (p.type == "video") {
            if (main_video_found) {
                p.reason = "only the main video stream is transcoded";
            } else if (audio_only) {
                main_video_found = true;
                p.reason = upper + " holds audio only";
            } else if (vcodec == "none") {
                main_video_found = true;
                p.reason = "video.codec is none";
            } else {
                main_video_found = true;
                p.action = vcodec == "copy" ? StreamAction::Copy : StreamAction::Encode;
                p.encoder = vcodec;
                p.reason = vcodec == "copy" ? "the main video, copied" : "the main video";
            }
        } else if (p.type == "audio") {
            audio.push_back(at);
        } else if (p.type == "subtitle") {
            subtitles.push_back(at);
        } else if (p.type == "attachment") {
            if (matroska) {
                p.action = StreamAction::Copy;
                p.encoder = "copy";
                p.reason =
                    s.mimetype.empty() ? "attachment, copied" : "attachment (" + s.mimetype + "), copied";
            } else {
                p.reason = upper + " cannot hold attachments";
            }
        } else {
            p.reason = p.type == "data" ? "data and timecode streams are not carried"
                                        : p.type + " streams are not carried";
        }
        plan.streams.push_back(std::move(p));
    }

    // Audio: every track unless the job selects.
    if (acodec == "none") {
        for (int i : audio) plan.streams[i].reason = "audio.codec is none";
    } else {
        auto keep = selected(plan.streams, audio, o.audio.languages);
        if (o.audio.languages && keep.empty() && !audio.empty())
            return Error(ErrorCode::Unprocessable, "audio.languages matches no audio track of the source",
                         {{"field", "audio.languages"}, {"source_languages", languages_of(src, "audio")}});
        if (o.audio.languages && audio.empty())
            return Error(ErrorCode::Unprocessable, "audio.languages is set but the source has no audio track",
                         {{"field", "audio.languages"}, {"source_languages", json::array()}});
        const bool first_only = o.audio.tracks == "first";
        for (int i : audio) {
            auto& p = plan.streams[i];
            p.reason = o.audio.languages ? "not one of audio.languages" : "";
        }
        for (size_t k = 0; k < keep.size(); ++k) {
            auto& p = plan.streams[keep[k]];
            if (k > 0 && (first_only || one_audio)) {
                p.reason = first_only ? "audio.tracks is first" : upper + " holds one audio track";
                continue;
            }
            p.action = acodec == "copy" ? StreamAction::Copy : StreamAction::Encode;
            p.encoder = acodec;
            p.reason = acodec == "copy" ? "audio, copied" : "audio";
            const auto& s = src.streams[static_cast<size_t>(keep[k])];  // plan.streams mirrors src.streams
            if (acodec != "copy" && !o.audio.channels && s.channels) {
                int max = acodec == "libmp3lame" ? 2 : acodec == "ac3" ? 6 : 8;
                if (*s.channels > max) {
                    p.channels = max;
                    p.reason = "audio, downmixed to " + std::to_string(max) + " channels (" + acodec +
                               " holds at most " + std::to_string(max) + ")";
                } else if (!s.channel_layout.empty()) {
                    p.reason = "audio, " + s.channel_layout + " kept";
                }
            }
        }
    }

    // Subtitles: text ones converted where the container needs another format, bitmap ones copied
    // where they fit.
    if (o.subtitles.mode == "drop") {
        for (int i : subtitles) plan.streams[i].reason = "subtitles.mode is drop";
    } else {
        auto keep = selected(plan.streams, subtitles, o.subtitles.languages);
        if (o.subtitles.languages && keep.empty())
            return Error(
                ErrorCode::Unprocessable,
                subtitles.empty() ? "subtitles.languages is set but the source has no subtitles"
                                  : "subtitles.languages matches no subtitle track of the source",
                {{"field", "subtitles.languages"}, {"source_languages", languages_of(src, "subtitle")}});
        for (int i : subtitles)
            plan.streams[i].reason = o.subtitles.languages ? "not one of subtitles.languages" : "";
        for (int i : keep) {
            auto& p = plan.streams[i];
            std::string target;  // the encoder; "copy" keeps it as it is
            if (audio_only) {
                p.reason = upper + " holds audio only";
            } else if (matroska) {
                if (is_bitmap_subtitle(p.codec) || one_of(p.codec, {"subrip", "ass", "ssa", "webvtt"}))
                    target = "copy";
                else if (is_text_subtitle(p.codec))
                    target = "srt";
                else
                    p.reason = "subtitle codec '" + p.codec + "' cannot be carried";
            } else if (mp4_family) {
                if (p.codec == "mov_text")
                    target = "copy";
                else if (is_text_subtitle(p.codec))
                    target = "mov_text";
                else
                    p.reason = upper + " cannot hold " +
                               (is_bitmap_subtitle(p.codec) ? "bitmap subtitles (" + p.codec + ")"
                                                            : "subtitle codec '" + p.codec + "'");
            } else if (container == "webm") {
                if (p.codec == "webvtt")
                    target = "copy";
                else if (is_text_subtitle(p.codec))
                    target = "webvtt";
                else
                    p.reason = "WebM cannot hold " + (is_bitmap_subtitle(p.codec)
                                                          ? "bitmap subtitles (" + p.codec + ")"
                                                          : "subtitle codec '" + p.codec + "'");
            } else if (container == "ts" && p.codec == "dvb_subtitle") {
                target = "copy";
            } else {
                p.reason = upper + " cannot hold subtitle codec '" + p.codec + "'";
            }
            if (target.empty()) {
                if (o.subtitles.on_unsupported == "fail")
                    return Error(ErrorCode::Unprocessable,
                                 "subtitle stream " + describe(p) + " cannot be kept: " + p.reason,
                                 {{"field", "subtitles.on_unsupported"}, {"stream", p.index}});
                continue;
            }
            p.encoder = target;
            if (target == "copy") {
                p.action = StreamAction::Copy;
                p.reason = "subtitles, copied";
            } else {
                p.action = StreamAction::Convert;
                p.reason = "subtitles, converted to " + target +
                           (one_of(p.codec, {"ass", "ssa"}) ? " (ASS styling is not kept)" : "");
            }
        }
    }

    // Output order: the main video, audio (selection order), subtitles, attachments, cover art (the
    // muxers that hold cover art write it after the tracks, whatever the map order).
    auto push = [&](int i) {
        if (plan.streams[i].action != StreamAction::Drop) plan.output_order.push_back(i);
    };
    auto cover = [&](int i) {
        return plan.streams[i].type == "video" &&
               std::count(plan.streams[i].disposition.begin(), plan.streams[i].disposition.end(),
                          "attached_pic");
    };
    for (int i = 0; i < static_cast<int>(plan.streams.size()); ++i)
        if (plan.streams[i].type == "video" && !cover(i)) push(i);
    for (int i : selected(plan.streams, audio, o.audio.languages)) push(i);
    for (int i : selected(plan.streams, subtitles, o.subtitles.languages)) push(i);
    for (int i = 0; i < static_cast<int>(plan.streams.size()); ++i)
        if (plan.streams[i].type == "attachment") push(i);
    for (int i = 0; i < static_cast<int>(plan.streams.size()); ++i)
        if (cover(i)) push(i);
    if (plan.output_order.empty() && !src.streams.empty()) {
        std::string why;
        for (const auto& p : plan.streams)
            if (p.type == "video" || p.type == "audio")
                why += (why.empty() ? "" : "; ") + describe(p) + ": " + p.reason;
        return Error(
            ErrorCode::Unprocessable,
            "the output would hold none of the source's streams" + (why.empty() ? "" : " (" + why + ")"),
            {{"field", "container"}});
    }
    for (auto& p : plan.streams)
        if (p.action != StreamAction::Drop)
            p.output_codec_name = p.encoder == "copy" ? p.codec : codec_name_of(p.encoder);

    if (src.chapters > 0) {
        plan.chapters = one_of(container, {"mp4", "mov", "m4a", "mkv", "webm"});
        plan.chapters_reason = plan.chapters ? std::to_string(src.chapters) + " chapters, kept"
                                             : upper + " cannot hold chapters";
    }

    // The picture: colour tags and HDR10 metadata go to the encoder; interlacing and rotation.
    const PlannedStream* main = plan.main_video();
    if (main && main->action == StreamAction::Encode) {
        const auto& s = src.streams[static_cast<size_t>(main - plan.streams.data())];
        const bool hdr = s.color_transfer == "smpte2084" || s.color_transfer == "arib-std-b67";
        const std::string out_pix = o.video.pix_fmt.value_or("yuv420p");
        if (hdr && !ten_bit(out_pix) && o.video.hdr != "tonemap")
            return Error(ErrorCode::Unprocessable,
                         "the source is HDR (" + s.color_transfer + ", " +
                             (s.pix_fmt.empty() ? std::string("10-bit") : s.pix_fmt) + ") and " +
                             (o.preset ? "preset " + *o.preset : std::string("these options")) +
                             " encodes 8-bit " + out_pix +
                             ": choose a 10-bit preset (h265-archive, av1-archive), set video.pix_fmt "
                             "yuv420p10le, or set video.hdr \"tonemap\" to convert it to SDR",
                         {{"field", "video.pix_fmt"},
                          {"source_pix_fmt", s.pix_fmt},
                          {"source_transfer", s.color_transfer}});
        plan.tonemap = hdr && !ten_bit(out_pix) && o.video.hdr == "tonemap";
        if (!plan.tonemap) {
            if (valid_tag(s.color_primaries)) plan.color_primaries = s.color_primaries;
            if (valid_tag(s.color_transfer)) plan.color_transfer = s.color_transfer;
            if (valid_tag(s.color_space)) plan.color_space = s.color_space;
            if (valid_tag(s.color_range)) plan.color_range = s.color_range;
            if (hdr) {
                plan.mastering_display = s.mastering_display;
                plan.content_light = s.content_light;
            }
        }
        const std::string deint = o.video.deinterlace.value_or("auto");
        const bool interlaced = one_of(s.field_order, {"tt", "bb", "tb", "bt"});
        plan.deinterlace = deint == "on" || (deint == "auto" && interlaced);
        if (s.rotation && std::fabs(*s.rotation) > 0.5) plan.rotation = s.rotation;
        auto& mv = plan.streams[static_cast<size_t>(main - plan.streams.data())];
        if (plan.deinterlace) mv.reason += ", deinterlaced";
        if (plan.rotation)
            mv.reason += ", rotated " + std::to_string(static_cast<int>(std::lround(*plan.rotation))) +
                         "° as displayed";
        if (hdr) mv.reason += plan.tonemap ? ", HDR tone-mapped to SDR" : ", HDR kept";
    }
    return plan;
}

json to_json(const StreamPlan& plan) {
    json streams = json::array();
    for (const auto& p : plan.streams) {
        json j{{"index", p.index},
               {"type", p.type},
               {"codec", p.codec},
               {"language", p.language.empty() ? json() : json(p.language)},
               {"title", p.title.empty() ? json() : json(p.title)},
               {"disposition", p.disposition},
               {"action", to_string(p.action)},
               {"reason", p.reason}};
        if (p.action != StreamAction::Drop) j["encoder"] = p.encoder;
        if (p.channels) j["channels"] = *p.channels;
        streams.push_back(std::move(j));
    }
    auto tag = [](const std::string& v) { return v.empty() ? json() : json(v); };
    json picture{{"deinterlace", plan.deinterlace},
                 {"tonemap", plan.tonemap},
                 {"color_primaries", tag(plan.color_primaries)},
                 {"color_transfer", tag(plan.color_transfer)},
                 {"color_space", tag(plan.color_space)},
                 {"color_range", tag(plan.color_range)},
                 {"mastering_display", tag(plan.mastering_display)},
                 {"content_light", tag(plan.content_light)},
                 {"rotation", plan.rotation ? json(*plan.rotation) : json()}};
    return json{{"streams", std::move(streams)},
                {"chapters", plan.chapters},
                {"chapters_reason", tag(plan.chapters_reason)},
                {"picture", std::move(picture)}};
}

std::optional<std::string> duration_difference(std::optional<double> expected, std::optional<double> actual) {
    if (!expected || !(*expected > 0)) return std::nullopt;
    const double tolerance = std::max(0.5, *expected * 0.01);
    char buf[160];
    if (!actual) {
        std::snprintf(buf, sizeof buf, "the output has no duration (expected %.2f s)", *expected);
        return std::string(buf);
    }
    if (std::fabs(*actual - *expected) <= tolerance) return std::nullopt;
    std::snprintf(buf, sizeof buf, "the output is %.2f s long, expected %.2f s (within %.2f s)", *actual,
                  *expected, tolerance);
    return std::string(buf);
}

Status verify_output(const StreamPlan& plan, std::optional<double> expected, const ProbeInfo& out) {
    std::vector<std::string> diffs;
    // A Matroska written to a pipe (stream mode) has no duration in its header: unknown is not a
    // difference (the length ffmpeg reached is checked on complete instead).
    if (out.duration_seconds)
        if (auto d = duration_difference(expected, out.duration_seconds)) diffs.push_back(*d);
    // The output's streams other than data (a muxer may add a timecode track), in order.
    std::vector<const StreamInfo*> got;
    for (const auto& s : out.streams)
        if (s.codec_type != "data") got.push_back(&s);
    for (size_t k = 0; k < plan.output_order.size(); ++k) {
        const auto& p = plan.streams[static_cast<size_t>(plan.output_order[k])];
        if (k >= got.size()) {
            diffs.push_back("planned stream " + describe(p) + " is missing from the output");
            continue;
        }
        const auto& s = *got[k];
        if (s.codec_type != p.type) {
            diffs.push_back("output stream " + std::to_string(k) + " is " + s.codec_type + ", planned " +
                            p.type + " (" + describe(p) + ")");
        } else if (p.type != "attachment" && !p.output_codec_name.empty() &&
                   s.codec_name != p.output_codec_name) {
            diffs.push_back("output stream " + std::to_string(k) + " is " + s.codec_name + ", planned " +
                            p.output_codec_name + " (" + describe(p) + ")");
        } else if (!p.language.empty() && !same_language(p.language, s.language)) {
            diffs.push_back("output stream " + std::to_string(k) + " lost its language " + p.language);
        }
    }
    if (got.size() > plan.output_order.size())
        diffs.push_back("the output has " + std::to_string(got.size()) + " streams, planned " +
                        std::to_string(plan.output_order.size()));
    if (diffs.empty()) return {};
    std::string msg = "the output does not match its plan: ";
    for (size_t i = 0; i < diffs.size(); ++i) msg += (i ? "; " : "") + diffs[i];
    return Error(ErrorCode::OutputMismatch, msg, {{"differences", diffs}});
}

std::string output_demuxer(const std::string& container) {
    const std::string muxer = container_muxer(container);
    if (muxer == "mp4" || muxer == "mov" || muxer == "ipod") return "mov";
    if (muxer == "matroska" || muxer == "webm") return "matroska";
    return demuxer_allowed(muxer) ? muxer : std::string();
}

}  // namespace distconv::media
