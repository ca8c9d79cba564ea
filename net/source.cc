#include "net/source.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "util/hash.h"

namespace medpipe {

namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Splits "scheme://authority/path?query#frag" at the first '?' or '#'.
std::pair<std::string_view, std::string_view> SplitQuery(std::string_view url) {
  size_t q = url.find_first_of("?#");
  if (q == std::string_view::npos) return {url, {}};
  return {url.substr(0, q), url.substr(q)};
}

// Removes "user:password@" from the authority of a URL with a scheme.
std::string DropUserInfo(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  size_t auth_start = scheme + 3;
  size_t auth_end = url.find_first_of("/?#", auth_start);
  if (auth_end == std::string_view::npos) auth_end = url.size();
  std::string_view authority = url.substr(auth_start, auth_end - auth_start);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, auth_start)) + "***@" + std::string(url.substr(auth_start + at + 1));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string UriEncode(std::string_view s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UriDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
  }
  return out;
}

bool IsWadoRsPath(std::string_view url) {
  auto [base, query] = SplitQuery(url);
  size_t scheme = base.find("://");
  if (scheme == std::string_view::npos) return false;
  size_t path_start = base.find('/', scheme + 3);
  if (path_start == std::string_view::npos) return false;
  std::string_view path = base.substr(path_start);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  std::vector<std::string_view> segs;
  for (size_t i = 0; i < path.size();) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) segs.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  // The tail must be studies/X, studies/X/series/Y or .../instances/Z.
  for (size_t n : {2u, 4u, 6u}) {
    if (segs.size() < n) continue;
    size_t k = segs.size() - n;
    static const std::string_view kNames[] = {"studies", "series", "instances"};
    bool match = true;
    for (size_t p = 0; p < n / 2; ++p) match = match && segs[k + 2 * p] == kNames[p];
    if (match) return true;
  }
  return false;
}

Result<Source> ParseSource(const std::string& url) {
  Source src;
  src.url = url;
  if (url.empty()) return Status::Invalid("empty URL");
  if (StartsWith(url, "s3://")) {
    auto [base, query] = SplitQuery(std::string_view(url).substr(5));
    size_t slash = base.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 >= base.size()) {
      return Status::Invalid("not an s3://bucket/key URL: " + RedactUrl(url));
    }
    src.kind = SourceKind::kS3;
    src.s3.bucket = std::string(base.substr(0, slash));
    src.s3.key = std::string(base.substr(slash + 1));  // raw, as the AWS CLI writes keys
    if (!query.empty() && query[0] == '?') src.s3.query = std::string(query.substr(1));
    return src;
  }
  if (StartsWith(url, "http://") || StartsWith(url, "https://")) {
    src.kind = IsWadoRsPath(url) ? SourceKind::kDicomWeb : SourceKind::kHttp;
    return src;
  }
  if (StartsWith(url, "file://")) {
    std::string_view rest = std::string_view(url).substr(7);
    // file:///abs/path or file://localhost/abs/path
    if (StartsWith(rest, "localhost/")) rest.remove_prefix(9);
    if (rest.empty() || rest[0] != '/') return Status::Invalid("not a file:///absolute/path URL: " + RedactUrl(url));
    src.kind = SourceKind::kLocal;
    src.path = UriDecode(rest, false);
    return src;
  }
  if (size_t colon = url.find("://"); colon != std::string::npos) {
    return Status::Invalid("unsupported URL scheme '" + url.substr(0, colon) + "' in " + RedactUrl(url));
  }
  src.kind = SourceKind::kLocal;
  src.path = url;
  return src;
}

std::string SortedS3Query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  for (size_t i = 0; i <= query.size();) {
    size_t j = query.find('&', i);
    if (j == std::string_view::npos) j = query.size();
    std::string_view part = query.substr(i, j - i);
    if (!part.empty()) {
      size_t eq = part.find('=');
      std::string k = UriDecode(part.substr(0, eq), true);
      std::string v = eq == std::string_view::npos ? std::string() : UriDecode(part.substr(eq + 1), true);
      params.emplace_back(UriEncode(k, false), UriEncode(v, false));
    }
    i = j + 1;
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

std::string S3HttpUrl(const S3Location& loc, const S3Endpoint& ep) {
  std::string key = UriEncode(loc.key, /*keep_slash=*/true);
  std::string url;
  if (!ep.endpoint.empty()) {
    std::string base = ep.endpoint;
    if (base.find("://") == std::string::npos) base = "https://" + base;
    while (!base.empty() && base.back() == '/') base.pop_back();
    url = base + "/" + UriEncode(loc.bucket, false) + "/" + key;
  } else if (loc.bucket.find('.') != std::string::npos) {
    url = "https://s3." + ep.region + ".amazonaws.com/" + loc.bucket + "/" + key;
  } else {
    url = "https://" + loc.bucket + ".s3." + ep.region + ".amazonaws.com/" + key;
  }
  if (!loc.query.empty()) url += "?" + SortedS3Query(loc.query);
  return url;
}

std::string StripQuery(std::string_view url) { return DropUserInfo(SplitQuery(url).first); }

std::string RedactUrl(std::string_view url) {
  auto [base, query] = SplitQuery(url);
  std::string out = DropUserInfo(base);
  if (!query.empty()) out += "?<redacted>";
  return out;
}

std::string UrlItemKey(std::string_view url) {
  auto [base, query] = SplitQuery(url);
  std::string out = DropUserInfo(base);
  if (!query.empty()) out += "?#" + HashBytes(query).substr(0, 12);
  // When user:password@ was dropped, keep distinct identities distinct.
  if (DropUserInfo(base) != base) out += "#" + HashBytes(url).substr(0, 12);
  return out;
}

}  // namespace medpipe
