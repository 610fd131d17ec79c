// Deploying a published site on Akash: the SDL (Stack Definition Language 2.0) and the
// container build context (a Dockerfile around nginx and the version's files).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coop::site {

struct AkashOptions {
  std::string service = "web";
  std::string image;                 // e.g. registry.example.org/coop-site-NAME:7
  std::vector<std::string> domains;  // the site's domains: the SDL's accept list
  double cpu_units = 0.5;
  std::string memory = "256Mi";
  std::string storage = "1Gi";
  int64_t price_uakt = 1000;         // per block
  int count = 1;
  std::vector<std::string> attributes;  // placement attributes, key=value
};

// The SDL as YAML: version, services (image, port 80 exposed globally as 80 and the site's
// domains), profiles (compute: cpu, memory, storage; placement: pricing in uakt), deployment.
std::string akash_sdl(const AkashOptions& options);

// nginx serving /usr/share/nginx/html the way coop-site does: index.html, clean URLs, the
// site's own 404 page, precompressed .gz variants, security headers.
std::string nginx_conf();

// FROM nginx, the configuration, the files.
std::string dockerfile(const std::string& site, int64_t version);

}  // namespace coop::site
