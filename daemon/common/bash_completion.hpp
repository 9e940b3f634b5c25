#pragma once

// Bash completion written from a program's own CLI11 definitions, so the completion offers
// exactly the commands and options the program accepts (`modeldrop --bash-completion`).

#include <string>
#include <string_view>

namespace CLI {
class App;
}

namespace modeldrop {

// A script for /usr/share/bash-completion/completions/<program>. An option's values are
// completed from its type name: "PATH" or "FILE" as file names, "a|b|c" as those words.
std::string bash_completion_script(const CLI::App& app, std::string_view program);

}  // namespace modeldrop
