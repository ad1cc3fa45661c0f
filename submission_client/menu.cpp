#include "submission_client/menu.hpp"

#include "submission_client/admin_cmd.hpp"
#include "submission_client/jobs_cmd.hpp"
#include "submission_client/submit_cmd.hpp"

#include <filesystem>
#include <iostream>
#include <string>

namespace distconv::client {

namespace stdfs = std::filesystem;

namespace {

std::string ask(const std::string& prompt) {
    std::cout << prompt << std::flush;
    std::string line;
    if (!std::getline(std::cin, line)) return "q";
    auto b = line.find_first_not_of(" \t");
    auto e = line.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : line.substr(b, e - b + 1);
}

}  // namespace

int run_menu(const GlobalOptions& g) {
    std::cout << "distconv "
              << " — server " << g.server << "\n";
    int last = k_exit_ok;
    for (;;) {
        clear_interrupted();  // a Ctrl-C ends the command it came in, not the menu
        std::cout << "\n  1  submit a file\n  2  my jobs\n  3  all jobs (admin)\n  4  engines\n  5  download "
                     "a result\n"
                     "  q  quit\n";
        std::string choice = ask("> ");
        if (choice == "q" || choice == "quit") return last;
        try {
            Session s(g);
            if (choice == "1") {
                SubmitOptions o;
                std::string file = ask("file to transcode: ");
                if (file.empty()) continue;
                std::error_code ec;
                if (!stdfs::is_regular_file(file, ec)) {
                    std::cout << "no such file: " << file << "\n";
                    continue;
                }
                o.files = {file};
                std::string preset = ask("preset (Enter for the default, h264-web): ");
                if (!preset.empty()) o.flags.preset = preset;
                std::string out = ask("output file (Enter to put it next to the input): ");
                if (!out.empty()) o.output = out;
                last = run_submit(s, o);
            } else if (choice == "2") {
                last = run_list(s, ListOptions{});
            } else if (choice == "3") {
                ListOptions o;
                o.all = true;
                last = run_list(s, o);
            } else if (choice == "4") {
                last = run_engines(s);
            } else if (choice == "5") {
                DownloadCommandOptions o;
                o.job_id = ask("job id: ");
                if (o.job_id.empty()) continue;
                o.output = ask("save as (Enter for the job's output name): ");
                last = run_download(s, o);
            } else if (!choice.empty()) {
                std::cout << "choose 1-5 or q\n";
            }
        } catch (const Failure& f) {
            last = f.code;
        }
    }
}

}  // namespace distconv::client
