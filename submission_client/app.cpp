#include "submission_client/app.hpp"

#include "common/config.hpp"
#include "protocol/protocol.hpp"
#include "submission_client/admin_cmd.hpp"
#include "submission_client/core.hpp"
#include "submission_client/jobs_cmd.hpp"
#include "submission_client/library_cmd.hpp"
#include "submission_client/menu.hpp"
#include "submission_client/session.hpp"
#include "submission_client/submit_cmd.hpp"

#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace distconv::client {

int client_main(int argc, char** argv) {
    CLI::App app{"distconv: submit videos to a distconv dispatch server and fetch the results", "distconv"};
    app.fallthrough();  // global flags may also come after the subcommand
    app.require_subcommand(0, 1);
    app.footer(
        "Examples:\n"
        "  distconv submit clip.mov                      # upload, wait, download clip.mp4\n"
        "  distconv submit *.mkv --preset h264-web --output-dir out/ --detach\n"
        "  distconv list --state running\n"
        "\n"
        "Server and key: --server/--key, DISTCONV_SERVER/DISTCONV_API_KEY, or "
        "~/.config/distconv/client.ini.\n"
        "Exit codes: 0 ok, 1 job failed or canceled, 2 usage, 3 server unreachable or key refused, 130 "
        "interrupted.");

    GlobalOptions g;
    app.add_option("--server", g.server, "Dispatch server URL")
        ->envname("DISTCONV_SERVER")
        ->capture_default_str();
    app.add_option("--key", g.key, "API key (sent as a Bearer token)")->envname("DISTCONV_API_KEY");
    app.add_flag("--json", g.json, "Print one JSON document on stdout instead of tables");
    app.add_option("--ca-cert", g.ca_cert, "CA bundle to verify the server's TLS certificate")
        ->check(CLI::ExistingFile);
    app.add_option("--limit-upload", g.limit_upload, "Cap uploads at this many bytes per second (e.g. 20MB)")
        ->transform(CLI::AsSizeValue(false));
    app.add_option("--limit-download", g.limit_download,
                   "Cap downloads at this many bytes per second (e.g. 20MB)")
        ->transform(CLI::AsSizeValue(false));
    app.add_flag("--allow-insecure", g.allow_insecure,
                 "Allow sending the key over plain http to a non-loopback host");

    // submit
    SubmitOptions submit;
    auto* sub = app.add_subcommand("submit", "Upload media files, transcode them and download the results");
    sub->add_option("files", submit.files, "Input media files")->required()->check(CLI::ExistingFile);
    auto* out_opt = sub->add_option("-o,--output", submit.output, "Output file (one input only)");
    sub->add_option("--output-dir", submit.output_dir,
                    "Directory for the outputs (default: next to each input)")
        ->excludes(out_opt);
    auto* preset_opt = sub->add_option("--preset", "Named preset (see `distconv presets`)");
    auto* vcodec_opt = sub->add_option(
        "--video-codec", "Video codec: libx264, libx265, libvpx-vp9, libaom-av1, copy, none ...");
    auto* crf_opt =
        sub->add_option("--crf", "Constant rate factor (quality; lower is better)")->check(CLI::Range(0, 63));
    auto* bitrate_opt = sub->add_option("--bitrate", "Video bitrate, e.g. 3M or 800k");
    auto* scale_opt = sub->add_option("--scale", "Scale to W:H, e.g. 1280:720 or -2:720");
    auto* fps_opt = sub->add_option("--fps", "Frame rate, e.g. 30 or 30000/1001");
    auto* acodec_opt =
        sub->add_option("--audio-codec", "Audio codec: aac, libopus, libmp3lame, flac, copy, none ...");
    auto* abitrate_opt = sub->add_option("--audio-bitrate", "Audio bitrate, e.g. 128k");
    auto* container_opt =
        sub->add_option("--container", "Output container: mp4, mkv, webm, mov, ts, m4a, mp3, ogg, flac");
    auto* prio_opt =
        sub->add_option("--priority", "Priority -100..100 (higher runs first)")->check(CLI::Range(-100, 100));
    auto* split_opt = sub->add_option("--split",
                                      "Split mode: auto (the default), on, off: one long file "
                                      "encoded in segments by several engines at once");
    auto* segment_opt =
        sub->add_option("--segment-seconds", "Split mode's segment length in seconds (2-3600)");
    auto* wait_flag =
        sub->add_flag("--wait", submit.wait, "Wait for the jobs and download the results (the default)");
    sub->add_flag("--detach", submit.detach, "Print the job ids and exit without waiting")
        ->excludes(wait_flag);
    sub->add_flag("--force", submit.force, "Overwrite existing output files");
    sub->footer(
        "Examples:\n"
        "  distconv submit clip.mov                         # -> clip.mp4 next to it\n"
        "  distconv submit clip.mov -o small.mkv --video-codec libx265 --crf 28 --scale -2:720\n"
        "  distconv submit a.mov b.mov c.mov --output-dir out/ --detach --json\n"
        "  distconv submit film.mkv --split on --segment-seconds 60   # every engine takes a part");

    // library
    LibraryOptions lib;
    auto* library_cmd = app.add_subcommand("library", "Normalize a media library: plan, run, status");
    library_cmd->require_subcommand(1);
    library_cmd->footer(
        "Examples:\n  distconv library plan ~/Videos --preset h265-archive\n"
        "  distconv library run ~/Videos --preset h265-archive --output-dir /mnt/new\n"
        "  distconv library status ~/Videos");
    auto add_selection = [&](CLI::App* c) {
        c->add_option("dirs", lib.dirs, "Library directories")->required()->check(CLI::ExistingDirectory);
        c->add_option("--preset", lib.flags.preset, "Named preset (see `distconv presets`)");
        c->add_option("--video-codec", lib.flags.video_codec,
                      "Video codec: libx264, libx265, libsvtav1, ...");
        c->add_option("--crf", lib.flags.crf, "Constant rate factor")->check(CLI::Range(0, 63));
        c->add_option("--audio-codec", lib.flags.audio_codec, "Audio codec: aac, libopus, flac, copy, ...");
        c->add_option("--container", lib.flags.container, "Output container: mkv, mp4, webm, ...");
        c->add_option("--rules", lib.rules_file, "JSON rules for what is already fine")
            ->check(CLI::ExistingFile);
        c->add_option("--settle", lib.settle_seconds,
                      "Seconds a file must be unchanged before it is taken (default 5)");
        c->add_option("--ffprobe", lib.ffprobe, "ffprobe program")->capture_default_str();
    };
    auto* lplan = library_cmd->add_subcommand("plan", "Probe every media file and say what a run would do");
    add_selection(lplan);
    lplan->footer("Example:\n  distconv library plan ~/Videos --preset h265-archive");
    // Where results go, and how many jobs at once: the same for run and watch.
    auto add_placement = [&](CLI::App* c) {
        auto* out = c->add_option("--output-dir", lib.output_dir, "Mirror the tree here with the results");
        c->add_flag("--replace", lib.replace, "Put each result in place of its original (moved to --trash)")
            ->excludes(out);
        c->add_option("--trash", lib.trash,
                      "Where --replace moves originals (default <root>/.distconv-trash)");
        c->add_flag("--delete-originals", lib.delete_originals, "With --replace: delete originals instead");
        c->add_flag("--allow-bigger", lib.allow_bigger,
                    "Place a result even when it is bigger than its source");
        c->add_option("--max-in-flight", lib.max_in_flight,
                      "Jobs on the server at once (default: online slots)")
            ->check(CLI::Range(1, 1000));
        c->add_option("--state", lib.state_file, "The state database (default $XDG_STATE_HOME/distconv/)");
    };
    auto* lrun =
        library_cmd->add_subcommand("run", "Transcode what the plan says, resumably, and place the results");
    add_selection(lrun);
    add_placement(lrun);
    lrun->footer(
        "Examples:\n  distconv library run ~/Videos --preset h265-archive --output-dir /mnt/new\n"
        "  distconv library run ~/Videos --preset h265-archive --replace --trash /mnt/old");
    double watch_interval = 30;
    auto* lwatch = library_cmd->add_subcommand(
        "watch", "Keep running: new or changed files are planned and run once they stop changing");
    add_selection(lwatch);
    add_placement(lwatch);
    lwatch->add_option("--interval", watch_interval, "Seconds between rescans (inotify wakes it sooner)")
        ->check(CLI::Range(0.2, 86400.0));
    lwatch->footer("Example:\n  distconv library watch ~/Videos --preset h265-archive --output-dir /mnt/new");
    auto* lstatus = library_cmd->add_subcommand("status", "What the state database says of a library");
    lstatus->add_option("dirs", lib.dirs, "Library directories")->required()->check(CLI::ExistingDirectory);
    lstatus->add_option("--state", lib.state_file, "The state database (default $XDG_STATE_HOME/distconv/)");
    lstatus->footer("Example:\n  distconv library status ~/Videos");

    std::string id_arg;
    auto* status_cmd = app.add_subcommand("status", "Show a job's state and progress");
    status_cmd->add_option("id", id_arg, "Job id")->required();
    status_cmd->footer("Example:\n  distconv status 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8");

    ListOptions list;
    auto* list_cmd = app.add_subcommand("list", "List your jobs, newest first");
    list_cmd
        ->add_option("--state", list.state,
                     "Only jobs in this state (queued, running, completed, failed ...)")
        ->check(CLI::IsMember({"awaiting_upload", "queued", "assigned", "running", "canceling", "completed",
                               "failed", "canceled"}));
    list_cmd->add_flag("--all", list.all, "Everyone's jobs (admin key)");
    list_cmd->add_option("--limit", list.limit, "At most this many jobs (1-500)")
        ->check(CLI::Range(1, protocol::k_max_list_limit))
        ->capture_default_str();
    list_cmd->footer("Examples:\n  distconv list\n  distconv list --state failed --limit 10 --json");

    std::vector<std::string> ids;
    auto* watch_cmd = app.add_subcommand("watch", "Follow jobs until they finish (without downloading)");
    watch_cmd->add_option("ids", ids, "Job ids")->required();
    watch_cmd->footer("Example:\n  distconv watch 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8");

    auto* cancel_cmd = app.add_subcommand("cancel", "Cancel jobs");
    cancel_cmd->add_option("ids", ids, "Job ids")->required();
    cancel_cmd->footer("Example:\n  distconv cancel 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8");

    auto* retry_cmd = app.add_subcommand("retry", "Queue a failed or canceled job again");
    retry_cmd->add_option("id", id_arg, "Job id")->required();
    retry_cmd->footer("Example:\n  distconv retry 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8");

    DownloadCommandOptions download;
    auto* download_cmd =
        app.add_subcommand("download", "Download a completed job's result (resumes an interrupted one)");
    download_cmd->add_option("id", download.job_id, "Job id")->required();
    download_cmd->add_option("-o,--output", download.output,
                             "Output file (default: the job's output name here)");
    download_cmd->add_flag("--force", download.force, "Overwrite an existing file");
    download_cmd->footer("Example:\n  distconv download 01J9Z3K6Q8M1V7T2W4X5Y6Z7A8 -o result.mp4");

    auto* engines_cmd = app.add_subcommand("engines", "List the transcoding engines");
    engines_cmd->footer("Example:\n  distconv engines --json");
    auto* pools_cmd = app.add_subcommand("pools", "List the storage pools and their free space");
    pools_cmd->footer("Example:\n  distconv pools");
    auto* presets_cmd = app.add_subcommand("presets", "List the named presets");
    presets_cmd->footer("Example:\n  distconv presets");

    auto* keys_cmd = app.add_subcommand("keys", "Manage API keys (admin key)");
    keys_cmd->require_subcommand(1);
    keys_cmd->footer(
        "Examples:\n  distconv keys create --name alice --role user\n  distconv keys list\n"
        "  distconv keys revoke alice");
    std::string key_name, key_role = "user";
    bool keys_all = false;
    auto* kcreate = keys_cmd->add_subcommand("create", "Create a key; prints the secret once");
    kcreate->add_option("--name", key_name, "Key name ([A-Za-z0-9._@-], 1-64)")->required();
    kcreate->add_option("--role", key_role, "Role")
        ->check(CLI::IsMember({"admin", "user", "engine"}))
        ->capture_default_str();
    kcreate->footer("Example:\n  distconv keys create --name alice --role user");
    auto* klist = keys_cmd->add_subcommand("list", "List keys (never their secrets)");
    klist->add_flag("--all", keys_all, "Include revoked keys");
    klist->footer("Example:\n  distconv keys list --json");
    auto* krevoke = keys_cmd->add_subcommand("revoke", "Revoke a key by id or name");
    krevoke->add_option("id", id_arg, "Key id or name")->required();
    krevoke->footer("Example:\n  distconv keys revoke alice");

    std::string home = std::getenv("HOME") ? std::getenv("HOME") : "";
    config::SourceSettings sources;
    if (!home.empty()) sources.default_files = {home + "/.config/distconv/client.ini"};
    config::add_sources(app, sources);

    auto parsed = config::parse(app, argc, argv, std::cout);
    if (!parsed) {
        std::cerr << error_line(parsed.error()) << "\nRun with --help for more information.\n";
        return k_exit_usage;
    }
    if (*parsed == config::Outcome::ExitSuccess) return k_exit_ok;

    if (auto st = check_key_transport(g.server, !g.key.empty(), g.allow_insecure); !st) {
        std::cerr << error_line(st.error()) << "\n";
        return k_exit_usage;
    }

    auto set_flags = [&] {
        auto str = [](CLI::Option* o) -> std::optional<std::string> {
            if (o->count() == 0) return std::nullopt;
            return o->as<std::string>();
        };
        submit.flags.preset = str(preset_opt);
        submit.flags.video_codec = str(vcodec_opt);
        if (crf_opt->count()) submit.flags.crf = crf_opt->as<int>();
        submit.flags.bitrate = str(bitrate_opt);
        submit.flags.scale = str(scale_opt);
        submit.flags.fps = str(fps_opt);
        submit.flags.audio_codec = str(acodec_opt);
        submit.flags.audio_bitrate = str(abitrate_opt);
        submit.flags.container = str(container_opt);
        if (prio_opt->count()) submit.flags.priority = prio_opt->as<int>();
        submit.flags.split = str(split_opt);
        if (segment_opt->count()) submit.flags.segment_seconds = segment_opt->as<double>();
    };

    try {
        if (app.get_subcommands().empty()) {
            if (::isatty(STDIN_FILENO) == 1) return run_menu(g);
            std::cerr << app.help()
                      << "distconv: a subcommand is required (stdin is not a terminal, so no menu)\n";
            return k_exit_usage;
        }
        Session s(g);
        if (sub->parsed()) {
            set_flags();
            return run_submit(s, submit);
        }
        if (status_cmd->parsed()) return run_status(s, id_arg);
        if (lplan->parsed()) return run_library_plan(s, lib);
        if (lrun->parsed()) return run_library_run(s, lib);
        if (lstatus->parsed()) return run_library_status(s, lib);
        if (lwatch->parsed()) return run_library_watch(s, lib, watch_interval);
        if (list_cmd->parsed()) return run_list(s, list);
        if (watch_cmd->parsed()) return run_watch(s, ids);
        if (cancel_cmd->parsed()) return run_cancel(s, ids);
        if (retry_cmd->parsed()) return run_retry(s, id_arg);
        if (download_cmd->parsed()) return run_download(s, download);
        if (engines_cmd->parsed()) return run_engines(s);
        if (pools_cmd->parsed()) return run_pools(s);
        if (presets_cmd->parsed()) return run_presets(s);
        if (kcreate->parsed()) return run_keys_create(s, key_name, key_role);
        if (klist->parsed()) return run_keys_list(s, keys_all);
        if (krevoke->parsed()) return run_keys_revoke(s, id_arg);
    } catch (const Failure& f) {
        return f.code;
    }
    std::cerr << app.help();
    return k_exit_usage;
}

}  // namespace distconv::client
