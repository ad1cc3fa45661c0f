// Every way a job's options can be wrong: each case must be refused as INVALID_ARGUMENT with the
// offending field named in details.field, whether the mistake is caught by parsing, by value
// validation, or only once the preset has been merged in.

#include "common/media/options.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace distconv::media {
namespace {

using nlohmann::json;

struct BadCase {
    std::string name;
    json input;
    std::string field;
};

std::string nul(const std::string& before, const std::string& after) {
    return before + std::string(1, '\0') + after;
}

std::vector<BadCase> bad_cases() {
    json too_many = json::array();
    for (int i = 0; i < 9; ++i) too_many.insert(too_many.end(), {"-g", "50"});
    return {
        // codecs, crf, rates
        {"unknown_video_codec", {{"video", {{"codec", "libx999"}}}}, "video.codec"},
        {"unknown_audio_codec", {{"audio", {{"codec", "mp3"}}}}, "audio.codec"},
        {"negative_crf", {{"video", {{"crf", -1}}}}, "video.crf"},
        {"crf_too_big_x264", {{"video", {{"crf", 52}}}}, "video.crf"},
        {"crf_too_big_vp9", {{"preset", "vp9-web"}, {"video", {{"crf", 64}}}}, "video.crf"},
        {"crf_absurd_number", {{"video", {{"crf", 1e20}}}}, "video.crf"},
        {"crf_wrong_type", {{"video", {{"crf", "23"}}}}, "video.crf"},
        {"crf_with_mpeg4", {{"container", "mkv"}, {"video", {{"codec", "mpeg4"}, {"crf", 5}}}}, "video.crf"},
        {"bitrate_absurd", {{"video", {{"bitrate", "999999M"}}}}, "video.bitrate"},
        {"bitrate_with_space", {{"video", {{"bitrate", "3 M"}}}}, "video.bitrate"},
        {"bitrate_exponent", {{"video", {{"bitrate", "1e9"}}}}, "video.bitrate"},
        {"maxrate_without_bufsize", {{"video", {{"maxrate", "4M"}}}}, "video.bufsize"},
        {"audio_bitrate_absurd", {{"audio", {{"bitrate", "100M"}}}}, "audio.bitrate"},
        {"video_preset_unknown", {{"video", {{"preset", "ludicrous"}}}}, "video.preset"},
        {"video_preset_speed_for_x264", {{"video", {{"preset", "4"}}}}, "video.preset"},
        {"video_profile_unknown", {{"video", {{"profile", "extreme"}}}}, "video.profile"},
        {"video_profile_protocol", {{"video", {{"profile", "pipe:1"}}}}, "video.profile"},
        {"pix_fmt_unknown", {{"video", {{"pix_fmt", "rgb48"}}}}, "video.pix_fmt"},
        {"codec_with_nul", {{"video", {{"codec", nul("libx264", "")}}}}, "video.codec"},
        // fps and scale
        {"fps_absurd", {{"video", {{"fps", 10000}}}}, "video.fps"},
        {"fps_zero", {{"video", {{"fps", 0}}}}, "video.fps"},
        {"fps_zero_denominator", {{"video", {{"fps", "30/0"}}}}, "video.fps"},
        {"fps_expression", {{"video", {{"fps", "ntsc*2"}}}}, "video.fps"},
        {"fps_wrong_type", {{"video", {{"fps", true}}}}, "video.fps"},
        {"scale_absurd", {{"video", {{"scale", "100000:720"}}}}, "video.scale"},
        {"scale_wrong_syntax", {{"video", {{"scale", "1280x720"}}}}, "video.scale"},
        {"scale_expression", {{"video", {{"scale", "iw/2:ih/2"}}}}, "video.scale"},
        {"scale_filter_injection", {{"video", {{"scale", "1280:720,movie=x"}}}}, "video.scale"},
        {"scale_with_copy", {{"video", {{"codec", "copy"}, {"scale", "-2:720"}}}}, "video.scale"},
        // audio
        {"channels_zero", {{"audio", {{"channels", 0}}}}, "audio.channels"},
        {"channels_absurd", {{"audio", {{"channels", 64}}}}, "audio.channels"},
        {"channels_fractional", {{"audio", {{"channels", 2.5}}}}, "audio.channels"},
        {"sample_rate_unknown", {{"audio", {{"sample_rate", 12345}}}}, "audio.sample_rate"},
        {"sample_rate_opus",
         {{"container", "mkv"}, {"audio", {{"codec", "libopus"}, {"sample_rate", 44100}}}},
         "audio.sample_rate"},
        {"both_streams_none",
         {{"video", {{"codec", "none"}}}, {"audio", {{"codec", "none"}}}},
         "audio.codec"},
        // trim
        {"trim_negative_start", {{"trim", {{"start", -1}}}}, "trim.start"},
        {"trim_zero_duration", {{"trim", {{"duration", 0}}}}, "trim.duration"},
        {"trim_absurd_duration", {{"trim", {{"duration", 1e12}}}}, "trim.duration"},
        {"trim_wrong_type", {{"trim", {{"start", "10"}}}}, "trim.start"},
        // container, preset, compatibility
        {"unknown_container", {{"container", "avi"}}, "container"},
        {"container_with_pipe", {{"container", "mp4|x"}}, "container"},
        {"unknown_preset", {{"preset", "h264-ultra"}}, "preset"},
        {"webm_with_h264", {{"container", "webm"}, {"video", {{"codec", "libx264"}}}}, "video.codec"},
        {"webm_with_aac", {{"container", "webm"}, {"audio", {{"codec", "aac"}}}}, "audio.codec"},
        {"audio_container_with_video",
         {{"container", "mp3"}, {"video", {{"codec", "libx264"}}}},
         "video.codec"},
        // shape and types
        {"unknown_top_level_key", {{"videos", json::object()}}, "videos"},
        {"unknown_nested_key", {{"video", {{"crff", 23}}}}, "video.crff"},
        {"unknown_audio_key", {{"audio", {{"volume", 2}}}}, "audio.volume"},
        {"video_not_object", {{"video", "libx264"}}, "video"},
        {"container_wrong_type", {{"container", 4}}, "container"},
        // output_filename
        {"output_parent_dir", {{"output_filename", "../out.mp4"}}, "output_filename"},
        {"output_with_slash", {{"output_filename", "dir/out.mp4"}}, "output_filename"},
        {"output_absolute", {{"output_filename", "/etc/passwd"}}, "output_filename"},
        {"output_backslash", {{"output_filename", "a\\b.mp4"}}, "output_filename"},
        {"output_dotdot", {{"output_filename", ".."}}, "output_filename"},
        {"output_nul", {{"output_filename", nul("out", ".mp4")}}, "output_filename"},
        {"output_newline", {{"output_filename", "out.mp4\n"}}, "output_filename"},
        {"output_dash", {{"output_filename", "-out.mp4"}}, "output_filename"},
        {"output_protocol", {{"output_filename", "file:out.mp4"}}, "output_filename"},
        {"output_too_long", {{"output_filename", std::string(300, 'x') + ".mp4"}}, "output_filename"},
        {"output_bad_utf8", {{"output_filename", "out\xff.mp4"}}, "output_filename"},
        {"output_extension_mismatch",
         {{"output_filename", "out.mkv"}, {"container", "mp4"}},
         "output_filename"},
        {"output_unknown_extension", {{"output_filename", "out.avi"}}, "output_filename"},
        // extra_args
        {"extra_input", {{"extra_args", {"-i", "/etc/passwd"}}}, "extra_args[0]"},
        {"extra_lavfi", {{"extra_args", {"-f", "lavfi"}}}, "extra_args[0]"},
        {"extra_file_protocol", {{"extra_args", {"file:/etc/passwd"}}}, "extra_args[0]"},
        {"extra_http_value", {{"extra_args", {"-g", "http://evil.example/x"}}}, "extra_args[1]"},
        {"extra_concat_value", {{"extra_args", {"-tune", "concat:a.mp4|b.mp4"}}}, "extra_args[1]"},
        {"extra_filter_complex_movie",
         {{"extra_args", {"-filter_complex", "movie=/etc/passwd"}}},
         "extra_args[0]"},
        {"extra_vf_movie", {{"extra_args", {"-vf", "movie=/etc/passwd"}}}, "extra_args[0]"},
        {"extra_af_amovie", {{"extra_args", {"-af", "amovie=/etc/passwd"}}}, "extra_args[0]"},
        {"extra_map", {{"extra_args", {"-map", "0"}}}, "extra_args[0]"},
        {"extra_overwrite", {{"extra_args", {"-y"}}}, "extra_args[0]"},
        {"extra_x264_params", {{"extra_args", {"-x264-params", "keyint=1"}}}, "extra_args[0]"},
        {"extra_output_name", {{"extra_args", {"-g", "50", "out.mp4"}}}, "extra_args[2]"},
        {"extra_missing_value", {{"extra_args", {"-g"}}}, "extra_args[0]"},
        {"extra_value_is_flag", {{"extra_args", {"-g", "-i"}}}, "extra_args[1]"},
        {"extra_value_out_of_range", {{"extra_args", {"-g", "100000"}}}, "extra_args[1]"},
        {"extra_value_not_integer", {{"extra_args", {"-bf", "2;rm"}}}, "extra_args[1]"},
        {"extra_covered_by_field", {{"extra_args", {"-ac", "2"}}}, "extra_args[0]"},
        {"extra_nul_value", {{"extra_args", {"-movflags", nul("+faststart", "")}}}, "extra_args[1]"},
        {"extra_bad_movflag", {{"extra_args", {"-movflags", "+faststart+dash"}}}, "extra_args[1]"},
        {"extra_movflags_in_mkv",
         {{"container", "mkv"}, {"extra_args", {"-movflags", "+faststart"}}},
         "extra_args[0]"},
        {"extra_tune_for_vp9", {{"preset", "vp9-web"}, {"extra_args", {"-tune", "film"}}}, "extra_args[0]"},
        {"extra_duplicate_flag", {{"extra_args", {"-g", "5", "-g", "6"}}}, "extra_args[2]"},
        {"extra_too_many", {{"extra_args", too_many}}, "extra_args"},
        {"extra_not_array", {{"extra_args", "-g 5"}}, "extra_args"},
        {"extra_not_string", {{"extra_args", {5}}}, "extra_args[0]"},
        // stream selection and picture handling
        {"deinterlace_unknown", {{"video", {{"deinterlace", "yes"}}}}, "video.deinterlace"},
        {"deinterlace_wrong_type", {{"video", {{"deinterlace", true}}}}, "video.deinterlace"},
        {"hdr_unknown", {{"video", {{"hdr", "squash"}}}}, "video.hdr"},
        {"tracks_unknown", {{"audio", {{"tracks", "second"}}}}, "audio.tracks"},
        {"audio_languages_not_array", {{"audio", {{"languages", "eng"}}}}, "audio.languages"},
        {"audio_languages_empty", {{"audio", {{"languages", json::array()}}}}, "audio.languages"},
        {"audio_language_not_iso639", {{"audio", {{"languages", {"English"}}}}}, "audio.languages"},
        {"audio_language_upper_case", {{"audio", {{"languages", {"ENG"}}}}}, "audio.languages"},
        {"audio_language_twice", {{"audio", {{"languages", {"eng", "eng"}}}}}, "audio.languages"},
        {"audio_language_control", {{"audio", {{"languages", {nul("en", "g")}}}}}, "audio.languages"},
        {"audio_languages_too_many",
         {{"audio", {{"languages", json(std::vector<std::string>(33, "en"))}}}},
         "audio.languages"},
        {"audio_language_not_string", {{"audio", {{"languages", {7}}}}}, "audio.languages"},
        {"subtitles_not_object", {{"subtitles", "keep"}}, "subtitles"},
        {"subtitles_unknown_key", {{"subtitles", {{"burn_in", true}}}}, "subtitles.burn_in"},
        {"subtitles_mode_unknown", {{"subtitles", {{"mode", "burn"}}}}, "subtitles.mode"},
        {"subtitles_on_unsupported_unknown",
         {{"subtitles", {{"on_unsupported", "ignore"}}}},
         "subtitles.on_unsupported"},
        {"subtitles_languages_with_drop",
         {{"subtitles", {{"mode", "drop"}, {"languages", {"en"}}}}},
         "subtitles.languages"},
        {"subtitles_language_not_iso639", {{"subtitles", {{"languages", {"e1"}}}}}, "subtitles.languages"},
    };
}

class BadOptions : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadOptions, IsRejectedWithTheFieldNamed) {
    const BadCase& c = GetParam();
    auto r = parse_and_resolve(c.input);
    ASSERT_FALSE(r.ok()) << "accepted: " << c.input.dump(-1, ' ', false, json::error_handler_t::replace);
    const Error& e = r.error();
    EXPECT_EQ(e.code, ErrorCode::InvalidArgument) << e.to_string();
    EXPECT_EQ(e.details.value("field", std::string()), c.field) << e.to_string();
    EXPECT_FALSE(e.message.empty());
    EXPECT_FALSE(e.retryable);
}

INSTANTIATE_TEST_SUITE_P(Table, BadOptions, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<BadCase>& param_info) {
                             return param_info.param.name;
                         });

TEST(BadOptionsTable, HasAtLeastThirtyCases) {
    EXPECT_GE(bad_cases().size(), 30u);
}

}  // namespace
}  // namespace distconv::media
