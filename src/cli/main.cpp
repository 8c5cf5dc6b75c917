#include "shardsim/cli/app.hpp"

int main(int argc, char** argv) { return shardsim::cli::main(argc, argv); }
