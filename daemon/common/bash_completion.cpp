#include "common/bash_completion.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

namespace modeldrop {
namespace {

bool is_hidden(const CLI::Option* option) {
  return option->get_group().empty();
}

// The long names ("--json") of the visible options of one command, help and version included.
std::vector<std::string> option_words(const CLI::App& app) {
  std::vector<std::string> words;
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_positional() || is_hidden(option)) continue;
    for (const auto& name : option->get_lnames()) words.push_back("--" + name);
  }
  return words;
}

enum class ValueKind { none, files, words };

struct ValueCompletion {
  ValueKind kind = ValueKind::none;
  std::string words;  // for ValueKind::words, space-separated
};

ValueCompletion value_completion(const CLI::Option* option) {
  const std::string type = option->get_type_name();
  if (type == "PATH" || type == "FILE" || type.ends_with("PATH") || type.ends_with("FILE")) {
    return {ValueKind::files, {}};
  }
  if (type.find('|') != std::string::npos) {
    std::string words = type;
    std::replace(words.begin(), words.end(), '|', ' ');
    return {ValueKind::words, words};
  }
  return {};
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& word : words) out += (out.empty() ? "" : " ") + word;
  return out;
}

// Shell function names cannot hold '-' everywhere bash runs; keep letters, digits, '_'.
std::string function_name(std::string_view program) {
  std::string name = "_";
  for (const char c : program) name += std::isalnum(static_cast<unsigned char>(c)) != 0 ? c : '_';
  return name + "_complete";
}

}  // namespace

std::string bash_completion_script(const CLI::App& app, std::string_view program) {
  std::vector<const CLI::App*> commands;
  for (const CLI::App* command : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (!command->get_group().empty()) commands.push_back(command);
  }
  // Options that take a value, by name: what to offer after them (one meaning per name).
  std::map<std::string, ValueCompletion> valued;
  std::vector<const CLI::App*> all{&app};
  all.insert(all.end(), commands.begin(), commands.end());
  for (const CLI::App* command : all) {
    for (const CLI::Option* option : command->get_options()) {
      if (option->get_positional() || option->get_expected_max() == 0 || is_hidden(option)) continue;
      for (const auto& name : option->get_lnames()) valued["--" + name] = value_completion(option);
    }
  }

  const std::string function = function_name(program);
  std::string out = fmt::format(
      "# bash completion for {0}, written by `{0} --bash-completion` from its option definitions.\n"
      "{1}() {{\n"
      "  local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} command= i\n",
      program, function);
  std::vector<std::string> command_names;
  for (const CLI::App* command : commands) command_names.push_back(command->get_name());
  std::string value_options;
  for (const auto& [name, completion] : valued) value_options += (value_options.empty() ? "" : "|") + name;
  if (!command_names.empty()) {
    std::string alternatives;
    for (const auto& name : command_names) alternatives += (alternatives.empty() ? "" : "|") + name;
    out +=
        "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
        "    case ${COMP_WORDS[i]} in\n";
    if (!value_options.empty()) out += "      " + value_options + ") ((i++)) ;;\n";
    out += "      " + alternatives +
           ") command=${COMP_WORDS[i]}; break ;;\n"
           "    esac\n"
           "  done\n";
  }
  if (!valued.empty()) {
    out += "  case $prev in\n";
    for (const auto& [name, completion] : valued) {
      switch (completion.kind) {
        case ValueKind::files:
          out +=
              "    " + name + ") COMPREPLY=($(compgen -f -- \"$cur\")); compopt -o filenames 2>/dev/null; return ;;\n";
          break;
        case ValueKind::words:
          out += "    " + name + ") COMPREPLY=($(compgen -W \"" + completion.words + "\" -- \"$cur\")); return ;;\n";
          break;
        case ValueKind::none:
          out += "    " + name + ") COMPREPLY=(); return ;;\n";
          break;
      }
    }
    out += "  esac\n";
  }
  out += "  case $command in\n";
  out += "    \"\") COMPREPLY=($(compgen -W \"" + join(option_words(app)) + (command_names.empty() ? "" : " ") +
         join(command_names) + "\" -- \"$cur\")) ;;\n";
  for (const CLI::App* command : commands) {
    // A positional PATH argument completes file names when the word is not an option.
    bool takes_paths = false;
    for (const CLI::Option* option : command->get_options()) {
      if (option->get_positional() && value_completion(option).kind == ValueKind::files) takes_paths = true;
    }
    std::vector<std::string> words = option_words(*command);
    for (const auto& word : option_words(app)) {
      if (word != "--version" && std::find(words.begin(), words.end(), word) == words.end()) words.push_back(word);
    }
    out += "    " + command->get_name() + ")\n";
    if (takes_paths) {
      out +=
          "      if [[ $cur != -* ]]; then COMPREPLY=($(compgen -f -- \"$cur\")); compopt -o filenames 2>/dev/null; "
          "return; fi\n";
    }
    out += "      COMPREPLY=($(compgen -W \"" + join(words) + "\" -- \"$cur\")) ;;\n";
  }
  out += "  esac\n}\n";
  out += fmt::format("complete -F {} {}\n", function, program);
  return out;
}

}  // namespace modeldrop
