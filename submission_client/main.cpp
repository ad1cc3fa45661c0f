#include "submission_client/app.hpp"

int main(int argc, char** argv) {
    return distconv::client::client_main(argc, argv);
}
