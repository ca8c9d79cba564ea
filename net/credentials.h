// Credentials for S3 and DICOMweb, and the redactor that keeps them out of
// every message.
//
// Secrets come only from the environment or a `.env` file, never from the
// pipeline file: stage params are copied into commit records and fingerprints
// (graph/params.h), which must stay shareable.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

// Variables from the process environment, then a `.env` file for names the
// environment does not set (python-dotenv's rule: the environment wins).
// `.env` syntax: KEY=VALUE lines, optional `export `, '#' comments, values
// optionally in single or double quotes.
class EnvSource {
 public:
  // `env_file` may be empty (no file). A named file that does not exist is
  // kNotFound; an unreadable one kIOError. Messages never quote values.
  static Result<EnvSource> Load(const fs::path& env_file);
  // From explicit values only (tests).
  static EnvSource FromMap(std::map<std::string, std::string> values);

  // "" when unset.
  std::string Get(const std::string& name) const;
  // Where Get(name) finds its value, for messages: "the environment", the
  // env file ("env file .env"), or "" when unset. Never the value.
  std::string Origin(const std::string& name) const;

 private:
  bool use_process_env_ = true;
  fs::path file_;
  std::map<std::string, std::string> file_values_;
};

std::map<std::string, std::string> ParseDotEnv(std::string_view text);

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // may be empty
  bool empty() const { return access_key_id.empty() || secret_access_key.empty(); }
};

// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, else the seeds'
// AWS_ACCESS_KEY/AWS_SECRET_KEY. Empty when neither pair is complete.
AwsCredentials AwsCredentialsFrom(const EnvSource& env);

enum class HttpAuthKind { kNone, kBasic, kBearer };

struct HttpAuth {
  HttpAuthKind kind = HttpAuthKind::kNone;
  std::string username, password;  // kBasic
  std::string token;               // kBearer
};

// `kind` is "none", "basic" (DICOMWEB_USERNAME, DICOMWEB_PASSWORD) or
// "bearer" (DICOMWEB_TOKEN). kConfig when a needed variable is unset (the
// message names the variable, never a value).
Result<HttpAuth> HttpAuthFrom(const std::string& kind, const EnvSource& env);

// Replaces every occurrence of a registered secret with "***". Register every
// credential the process uses; pass every message that leaves the network
// layer through Redact. Secrets shorter than 4 bytes are not registered (they
// would turn ordinary text into stars and protect nothing).
class Redactor {
 public:
  void Add(const std::string& secret);
  std::string Redact(std::string text) const;

 private:
  std::vector<std::string> secrets_;  // longest first, so a prefix never wins
};

}  // namespace medpipe
