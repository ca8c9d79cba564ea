// Where an object comes from: parsing the URLs a download CSV holds into the
// request medpipe makes, and rendering them safely for messages.
//
// Kinds: s3://bucket/key (S3 or an S3-compatible store), http(s):// (plain
// objects, or a DICOMweb WADO-RS study/series/instance URL, recognised by its
// path), file:// and plain local paths.
#pragma once

#include <string>
#include <string_view>

#include "util/fs.h"
#include "util/status.h"

namespace medpipe {

enum class SourceKind { kLocal, kHttp, kDicomWeb, kS3 };

struct S3Location {
  std::string bucket;
  std::string key;    // raw, as written after the bucket (as the AWS CLI does)
  std::string query;  // raw text after '?', may be empty
};

struct Source {
  SourceKind kind = SourceKind::kLocal;
  std::string url;   // as given
  fs::path path;     // kLocal
  S3Location s3;     // kS3
};

// Parses `url`. Rejects empty strings, unknown schemes and malformed s3 URLs
// (kInvalid, with the URL redacted in the message).
Result<Source> ParseSource(const std::string& url);

// True if an http(s) URL's path is a WADO-RS retrieve of a whole study,
// series or instance: .../studies/{uid}[/series/{uid}[/instances/{uid}]].
bool IsWadoRsPath(std::string_view url);

// Percent-encodes as SigV4 wants: every byte but A-Z a-z 0-9 - . _ ~ (and
// '/' when `keep_slash`).
std::string UriEncode(std::string_view s, bool keep_slash);
// Decodes %XX; '+' becomes a space only when `plus_is_space` (query text).
std::string UriDecode(std::string_view s, bool plus_is_space);

// Re-encodes an S3 query string sorted by key, then value (libcurl 7.88 signs
// the query in the order given; SigV4 wants it sorted: see KNOWN.md).
std::string SortedS3Query(std::string_view query);

struct S3Endpoint {
  std::string region = "us-east-1";
  // "" for AWS; else the base URL of an S3-compatible store
  // (http://127.0.0.1:9000), addressed path-style.
  std::string endpoint;
};

// The https URL an S3 object is fetched from: virtual-hosted style on AWS
// (path-style when the bucket name has dots, which TLS wildcards do not
// cover), path-style under an endpoint override.
std::string S3HttpUrl(const S3Location& loc, const S3Endpoint& ep);

// A URL fit for messages and outputs: user:password@ removed and the query
// string (which may carry a presigned signature) replaced by "?<redacted>".
std::string RedactUrl(std::string_view url);

// A stable item key for a URL that never contains its query text: the URL
// without query, plus a short hash of the query when there is one, so that
// two versions of one object stay distinct.
std::string UrlItemKey(std::string_view url);

// The URL without its query string (and without user:password@).
std::string StripQuery(std::string_view url);

}  // namespace medpipe
