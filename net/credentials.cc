#include "net/credentials.h"

#include <algorithm>
#include <cstdlib>

namespace medpipe {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::map<std::string, std::string> ParseDotEnv(std::string_view text) {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < text.size();) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view line = Trim(text.substr(i, j - i));
    i = j + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line.substr(0, 7) == "export ") line = Trim(line.substr(7));
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string key(Trim(line.substr(0, eq)));
    std::string_view value = Trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value[0] == '"' || value[0] == '\'') && value.back() == value[0]) {
      value = value.substr(1, value.size() - 2);
    } else if (size_t hash = value.find(" #"); hash != std::string_view::npos) {
      value = Trim(value.substr(0, hash));
    }
    if (!key.empty()) out[key] = std::string(value);
  }
  return out;
}

Result<EnvSource> EnvSource::Load(const fs::path& env_file) {
  EnvSource env;
  if (env_file.empty()) return env;
  std::error_code ec;
  if (!fs::exists(env_file, ec)) return Status::NotFound(env_file.string() + ": env file does not exist");
  Result<std::string> text = ReadFile(env_file);
  if (!text.ok()) return Status::IOError(env_file.string() + ": cannot read the env file");
  env.file_values_ = ParseDotEnv(*text);
  env.file_ = env_file;
  return env;
}

EnvSource EnvSource::FromMap(std::map<std::string, std::string> values) {
  EnvSource env;
  env.use_process_env_ = false;
  env.file_values_ = std::move(values);
  return env;
}

std::string EnvSource::Get(const std::string& name) const {
  if (use_process_env_) {
    if (const char* v = std::getenv(name.c_str()); v && *v) return v;
  }
  auto it = file_values_.find(name);
  return it == file_values_.end() ? std::string() : it->second;
}

std::string EnvSource::Origin(const std::string& name) const {
  if (use_process_env_) {
    if (const char* v = std::getenv(name.c_str()); v && *v) return "the environment";
  }
  auto it = file_values_.find(name);
  if (it == file_values_.end() || it->second.empty()) return "";
  return file_.empty() ? "the environment" : "env file " + file_.string();
}

AwsCredentials AwsCredentialsFrom(const EnvSource& env) {
  AwsCredentials c;
  c.access_key_id = env.Get("AWS_ACCESS_KEY_ID");
  c.secret_access_key = env.Get("AWS_SECRET_ACCESS_KEY");
  if (c.empty()) {
    c.access_key_id = env.Get("AWS_ACCESS_KEY");
    c.secret_access_key = env.Get("AWS_SECRET_KEY");
  }
  if (c.empty()) return AwsCredentials{};
  c.session_token = env.Get("AWS_SESSION_TOKEN");
  return c;
}

Result<HttpAuth> HttpAuthFrom(const std::string& kind, const EnvSource& env) {
  HttpAuth auth;
  if (kind.empty() || kind == "none") return auth;
  auto need = [&](const char* name, std::string* out) -> Status {
    *out = env.Get(name);
    if (out->empty()) return Status::Config(std::string("auth: ") + kind + " needs " + name + " in the environment or env_file");
    return Status::OK();
  };
  if (kind == "basic") {
    auth.kind = HttpAuthKind::kBasic;
    MEDPIPE_RETURN_IF_ERROR(need("DICOMWEB_USERNAME", &auth.username));
    MEDPIPE_RETURN_IF_ERROR(need("DICOMWEB_PASSWORD", &auth.password));
    return auth;
  }
  if (kind == "bearer") {
    auth.kind = HttpAuthKind::kBearer;
    MEDPIPE_RETURN_IF_ERROR(need("DICOMWEB_TOKEN", &auth.token));
    return auth;
  }
  return Status::Config("auth: expected none, basic or bearer, got '" + kind + "'");
}

void Redactor::Add(const std::string& secret) {
  if (secret.size() < 4) return;
  if (std::find(secrets_.begin(), secrets_.end(), secret) != secrets_.end()) return;
  secrets_.push_back(secret);
  std::sort(secrets_.begin(), secrets_.end(), [](const std::string& a, const std::string& b) {
    return a.size() > b.size();
  });
}

std::string Redactor::Redact(std::string text) const {
  for (const auto& s : secrets_) {
    for (size_t pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos + 3)) {
      text.replace(pos, s.size(), "***");
    }
  }
  return text;
}

}  // namespace medpipe
