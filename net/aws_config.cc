#include "net/aws_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <vector>

#include "util/fs.h"
#include "util/strings.h"

namespace medpipe {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "key = value" or "key: value", split at the first delimiter.
bool SplitKeyValue(std::string_view line, std::string* key, std::string* value) {
  size_t d = line.find_first_of("=:");
  if (d == std::string_view::npos) return false;
  *key = Lower(Trim(line.substr(0, d)));
  *value = std::string(Trim(line.substr(d + 1)));
  return !key->empty();
}

// One parsed file and what to call it in messages.
struct IniFile {
  fs::path path;
  bool exists = false;
  AwsIni ini;
};

Result<IniFile> LoadIni(const fs::path& path) {
  IniFile f;
  f.path = path;
  std::error_code ec;
  if (path.empty() || !fs::is_regular_file(path, ec)) return f;
  f.exists = true;
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return Status::IOError(path.string() + ": cannot read the AWS file");
  f.ini = ParseAwsIni(*text);
  return f;
}

// The profile names a file holds: every section of a credentials file; in a
// config file [profile NAME] and [default].
std::vector<std::string> ProfileNames(const AwsIni& ini, bool config) {
  std::vector<std::string> out;
  for (const auto& [section, keys] : ini) {
    if (!config) {
      out.push_back(section);
    } else if (section == "default") {
      out.push_back(section);
    } else if (section.rfind("profile ", 0) == 0) {
      out.push_back(std::string(Trim(std::string_view(section).substr(8))));
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

const std::map<std::string, std::string>* ProfileSection(const AwsIni& ini, const std::string& profile, bool config) {
  if (!config) {
    auto it = ini.find(profile);
    return it == ini.end() ? nullptr : &it->second;
  }
  // botocore splits "[profile   lab]" on whitespace, so extra spaces count
  // for nothing; [profile default] and [default] are the same profile.
  for (const auto& [section, keys] : ini) {
    if (section.rfind("profile ", 0) == 0 && Trim(std::string_view(section).substr(8)) == profile) return &keys;
  }
  if (profile == "default") {
    auto it = ini.find("default");
    if (it != ini.end()) return &it->second;
  }
  return nullptr;
}

std::string Where(const std::string& profile, const fs::path& file) {
  return fmt::format("profile '{}' in {}", profile, file.string());
}

std::string ExpandHome(const std::string& path, const EnvSource& env) {
  if (path == "~" || path.rfind("~/", 0) == 0) {
    std::string home = env.Get("HOME");
    if (home.empty()) return "";
    return home + path.substr(1);
  }
  return path;
}

// The profile as botocore sees it: the credentials file's section over the
// config file's.
struct Profile {
  std::string name;
  const IniFile* creds = nullptr;
  const IniFile* config = nullptr;
  const std::map<std::string, std::string>* creds_keys = nullptr;
  const std::map<std::string, std::string>* config_keys = nullptr;

  // The value of `key` and where it is, or {"", ""}.
  std::pair<std::string, std::string> Get(const std::string& key) const {
    for (auto [keys, file] : {std::pair{creds_keys, creds}, std::pair{config_keys, config}}) {
      if (!keys) continue;
      auto it = keys->find(key);
      if (it != keys->end() && !it->second.empty()) return {it->second, Where(name, file->path)};
    }
    return {"", ""};
  }
};

// Keys from one file's section of the profile. kConfig when only half a
// pair is there; empty credentials when none is.
Result<AwsCredentials> KeysIn(const std::map<std::string, std::string>* keys, const std::string& where) {
  AwsCredentials c;
  if (!keys) return c;
  auto get = [&](const char* k) {
    auto it = keys->find(k);
    return it == keys->end() ? std::string() : it->second;
  };
  c.access_key_id = get("aws_access_key_id");
  c.secret_access_key = get("aws_secret_access_key");
  if (c.access_key_id.empty() != c.secret_access_key.empty()) {
    return Status::Config(fmt::format("{} has {} but no {}", where,
                                      c.access_key_id.empty() ? "aws_secret_access_key" : "aws_access_key_id",
                                      c.access_key_id.empty() ? "aws_access_key_id" : "aws_secret_access_key"));
  }
  if (c.empty()) return AwsCredentials{};
  c.session_token = get("aws_session_token");
  if (c.session_token.empty()) c.session_token = get("aws_security_token");
  return c;
}

// The first key a profile has that names a credential source this chain
// does not implement, or "".
std::string UnsupportedSource(const Profile& p) {
  for (const char* k : {"role_arn", "credential_process", "sso_session", "sso_start_url", "credential_source",
                        "web_identity_token_file"}) {
    if (!p.Get(k).first.empty()) return k;
  }
  return "";
}

std::string FileState(const IniFile& f) {
  if (f.path.empty()) return "(no HOME, not looked for)";
  if (!f.exists) return f.path.string() + " (does not exist)";
  return f.path.string();
}

}  // namespace

AwsIni ParseAwsIni(std::string_view text) {
  AwsIni out;
  std::string section;
  bool in_section = false;
  std::string last_key;  // the key an indented line continues, in `section`
  for (size_t i = 0; i < text.size();) {
    size_t j = text.find('\n', i);
    if (j == std::string_view::npos) j = text.size();
    std::string_view raw = text.substr(i, j - i);
    i = j + 1;
    std::string_view line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    const bool indented = std::isspace(static_cast<unsigned char>(raw[0]));
    if (!indented && line.front() == '[' && line.back() == ']') {
      section = std::string(Trim(line.substr(1, line.size() - 2)));
      in_section = true;
      out[section];
      last_key.clear();
      continue;
    }
    if (!in_section) continue;  // keys before any section belong to nothing
    std::string key, value;
    if (indented && !last_key.empty()) {
      // A nested block (botocore's subsections): "s3 =\n  endpoint_url = x".
      if (SplitKeyValue(line, &key, &value)) out[section][last_key + "." + key] = value;
      continue;
    }
    if (!SplitKeyValue(line, &key, &value)) continue;
    out[section][key] = value;
    last_key = value.empty() ? key : "";
  }
  return out;
}

std::string AwsSettings::Describe() const {
  return fmt::format("S3 credentials{} {}; region {} from {}; endpoint {}", credentials.empty() ? ":" : " from",
                     credentials_from, s3.region,
                     region_from, s3.endpoint.empty() ? "AWS (" + endpoint_from + ")"
                                                      : RedactUrl(s3.endpoint) + " from " + endpoint_from);
}

Result<AwsSettings> ResolveAws(const EnvSource& env, const AwsOverrides& pipeline) {
  AwsSettings out;
  auto from_env = [&](const std::string& name) { return name + " in " + env.Origin(name); };

  // The profile and the two files.
  std::string profile_var = "AWS_PROFILE";
  std::string profile = env.Get(profile_var);
  if (profile.empty()) {
    profile_var = "AWS_DEFAULT_PROFILE";
    profile = env.Get(profile_var);
  }
  const bool explicit_profile = !profile.empty();
  if (!explicit_profile) profile = "default";
  out.profile = profile;
  auto file_path = [&](const char* var, const char* rel) -> fs::path {
    std::string v = env.Get(var);
    return ExpandHome(v.empty() ? std::string("~/.aws/") + rel : v, env);
  };
  MEDPIPE_ASSIGN_OR_RETURN(IniFile creds, LoadIni(file_path("AWS_SHARED_CREDENTIALS_FILE", "credentials")));
  MEDPIPE_ASSIGN_OR_RETURN(IniFile config, LoadIni(file_path("AWS_CONFIG_FILE", "config")));
  Profile p{profile, &creds, &config, ProfileSection(creds.ini, profile, false),
            ProfileSection(config.ini, profile, true)};
  if (explicit_profile && !p.creds_keys && !p.config_keys) {
    std::vector<std::string> names = ProfileNames(creds.ini, false);
    for (auto& n : ProfileNames(config.ini, true)) names.push_back(std::move(n));
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return Status::Config(fmt::format("{} ({}) names the AWS profile '{}', which is in neither {} nor {}; profiles "
                                      "there: {}",
                                      profile_var, env.Origin(profile_var), profile, FileState(creds),
                                      FileState(config), names.empty() ? "none" : Join(names, ", ")));
  }

  // Credentials.
  if (pipeline.anonymous) {
    out.credentials_from = "none (anonymous: true in the pipeline), requests are unsigned";
  } else if (AwsCredentials c = AwsCredentialsFrom(env); !c.empty()) {
    const bool standard = !env.Get("AWS_ACCESS_KEY_ID").empty() && !env.Get("AWS_SECRET_ACCESS_KEY").empty();
    out.credentials_from = standard ? from_env("AWS_ACCESS_KEY_ID") : from_env("AWS_ACCESS_KEY");
    out.credentials = std::move(c);
  } else {
    for (auto [keys, file] : {std::pair{p.creds_keys, &creds}, std::pair{p.config_keys, &config}}) {
      const std::string where = Where(profile, file->path);
      MEDPIPE_ASSIGN_OR_RETURN(AwsCredentials k, KeysIn(keys, where));
      if (!k.empty()) {
        out.credentials = std::move(k);
        out.credentials_from = where;
        break;
      }
    }
    if (out.credentials.empty()) {
      if (std::string unsupported = UnsupportedSource(p); !unsupported.empty()) {
        return Status::Config(fmt::format("AWS profile '{}' gets its credentials through {}, which medpipe does not "
                                          "support; put aws_access_key_id/aws_secret_access_key in the profile or "
                                          "the environment (e.g. from `aws configure export-credentials`)",
                                          profile, unsupported));
      }
      out.credentials_from = "none found (environment, profile '" + profile + "'), requests are unsigned";
    }
  }

  // Region.
  if (!pipeline.region.empty()) {
    out.s3.region = pipeline.region;
    out.region_from = "s3_region in the pipeline";
  } else if (std::string r = env.Get("AWS_REGION"); !r.empty()) {
    out.s3.region = r;
    out.region_from = from_env("AWS_REGION");
  } else if (std::string d = env.Get("AWS_DEFAULT_REGION"); !d.empty()) {
    out.s3.region = d;
    out.region_from = from_env("AWS_DEFAULT_REGION");
  } else if (auto [v, where] = p.Get("region"); !v.empty()) {
    out.s3.region = v;
    out.region_from = where;
  } else {
    out.s3.region = "us-east-1";
    out.region_from = "the default";
  }

  // Endpoint.
  const bool ignore_configured = Lower(env.Get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) == "true";
  std::string services = p.Get("services").first;
  const std::map<std::string, std::string>* service_keys = nullptr;
  if (!services.empty()) {
    if (auto it = config.ini.find("services " + services); it != config.ini.end()) service_keys = &it->second;
  }
  if (!pipeline.endpoint.empty()) {
    out.s3.endpoint = pipeline.endpoint;
    out.endpoint_from = "s3_endpoint in the pipeline";
  } else if (ignore_configured) {
    out.endpoint_from = from_env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
  } else if (std::string e = env.Get("AWS_ENDPOINT_URL_S3"); !e.empty()) {
    out.s3.endpoint = e;
    out.endpoint_from = from_env("AWS_ENDPOINT_URL_S3");
  } else if (std::string g = env.Get("AWS_ENDPOINT_URL"); !g.empty()) {
    out.s3.endpoint = g;
    out.endpoint_from = from_env("AWS_ENDPOINT_URL");
  } else if (service_keys && service_keys->count("s3.endpoint_url") && !service_keys->at("s3.endpoint_url").empty()) {
    out.s3.endpoint = service_keys->at("s3.endpoint_url");
    out.endpoint_from = fmt::format("[services {}] in {}", services, config.path.string());
  } else if (auto [v, where] = p.Get("endpoint_url"); !v.empty()) {
    out.s3.endpoint = v;
    out.endpoint_from = where;
  } else {
    out.endpoint_from = "no endpoint configured";
  }
  if (!out.s3.endpoint.empty() && out.s3.endpoint.rfind("http://", 0) != 0 &&
      out.s3.endpoint.rfind("https://", 0) != 0) {
    return Status::Config(fmt::format("the S3 endpoint from {} is not an http:// or https:// URL: '{}'",
                                      out.endpoint_from, RedactUrl(out.s3.endpoint)));
  }
  return out;
}

}  // namespace medpipe
