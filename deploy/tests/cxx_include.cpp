// A C++ program can include edgeskd.h and link the library (checks the extern "C" block and the header's C++
// validity under -Wall -Wextra -Werror).
#include "edgeskd.h"

#include <cstdio>
#include <cstring>

int main() {
    edgeskd_options opts;
    edgeskd_options_init(&opts);
    edgeskd_model *model = nullptr;
    char err[256];
    edgeskd_status st = edgeskd_open("/nonexistent", &opts, &model, err, sizeof err);
    if (st != EDGESKD_ERR_IO || model != nullptr || std::strlen(err) == 0) return 1;
    std::printf("edgeskd %s from C++: %s\n", edgeskd_version(), edgeskd_status_string(st));
    return 0;
}
