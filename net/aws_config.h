// The AWS settings for S3 requests, resolved the way boto3 and the AWS CLI
// resolve them, so that a user's existing setup works unchanged.
//
// Credentials, first found wins:
//   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), then
//      the seeds' AWS_ACCESS_KEY + AWS_SECRET_KEY, from the environment or
//      the stage's env_file (AwsCredentialsFrom);
//   2. the profile's aws_access_key_id / aws_secret_access_key
//      (/ aws_session_token) in the shared credentials file;
//   3. the same keys in the profile's section of the config file;
//   4. none: requests are sent unsigned (anonymous).
// The profile is AWS_PROFILE (else the legacy AWS_DEFAULT_PROFILE, else
// "default"). The files are AWS_SHARED_CREDENTIALS_FILE (else
// ~/.aws/credentials) and AWS_CONFIG_FILE (else ~/.aws/config); a missing
// file is simply empty, as for boto3. In the config file a profile is the
// section [profile NAME] ([default] or [profile default] for "default"); in
// the credentials file it is [NAME]. As in botocore, a key in the
// credentials file's section wins over the same key in the config file's.
//
// Region: the pipeline's s3_region, AWS_REGION, AWS_DEFAULT_REGION, the
// profile's `region`, else us-east-1.
// Endpoint: the pipeline's s3_endpoint; then, unless
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true, AWS_ENDPOINT_URL_S3,
// AWS_ENDPOINT_URL, the `s3 = endpoint_url = ...` of the profile's
// [services NAME] section, the profile's `endpoint_url`; else AWS itself.
//
// Not supported (a profile that has only these has no credentials here, and
// resolving fails with a message that says so): role_arn/source_profile,
// credential_process, SSO, and the EC2/ECS metadata services.
//
// Every resolved value carries where it came from, so that the run log can
// say "credentials from profile 'lab' in /home/u/.aws/credentials" without
// ever printing a key.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "net/credentials.h"
#include "net/source.h"
#include "util/status.h"

namespace medpipe {

// What the pipeline file itself says; "" means "not set there".
struct AwsOverrides {
  std::string region;
  std::string endpoint;
  bool anonymous = false;  // never sign, whatever credentials exist
};

struct AwsSettings {
  AwsCredentials credentials;  // empty: anonymous
  S3Endpoint s3;
  std::string profile;         // the profile consulted
  // Provenance, e.g. "AWS_REGION in the environment",
  // "profile 'lab' in /home/u/.aws/config", "the default".
  std::string credentials_from, region_from, endpoint_from;

  // One line for the run log: the sources, the region and the endpoint
  // (redacted), never a key id, secret or token.
  std::string Describe() const;
};

// Resolves the chain above. `env` supplies every variable, HOME included
// (for ~). Errors are kConfig and never quote a file's values: a profile
// named by AWS_PROFILE that neither file has (the message lists the
// profiles that exist), a profile with one half of a key pair, a profile
// that names credentials this chain cannot use, an endpoint that is not an
// http(s) URL; kIOError for a file that exists but cannot be read.
Result<AwsSettings> ResolveAws(const EnvSource& env, const AwsOverrides& pipeline);

// An AWS shared config or credentials file: section -> key -> value. Keys
// are lower-cased; an indented block under `key =` becomes "key.subkey"
// (botocore's nested sections, e.g. "s3.endpoint_url"). Lines starting with
// '#' or ';' are comments; both '=' and ':' separate a key from its value.
using AwsIni = std::map<std::string, std::map<std::string, std::string>>;
AwsIni ParseAwsIni(std::string_view text);

}  // namespace medpipe
