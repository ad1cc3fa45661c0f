#pragma once
// distconv-engine's entry point: config, logging, capabilities, benchmark, signals, run.

namespace distconv::engine {

int engine_main(int argc, char** argv);

}  // namespace distconv::engine
