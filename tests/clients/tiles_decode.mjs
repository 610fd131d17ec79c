// Decodes every tile in a directory (Z-X-Y.pbf, not gzip'd) with @mapbox/vector-tile, the
// library MapLibre's and Mapbox's tooling build on, and prints a JSON summary: tiles and
// features decoded, and the GeoJSON of the features whose ids are asked for, per tile.
// Usage: node tiles_decode.mjs DIR [ID...]
import fs from "node:fs";
import path from "node:path";
import Pbf from "pbf";
import { VectorTile } from "@mapbox/vector-tile";

const [dir, ...ids] = process.argv.slice(2);
const wanted = new Set(ids.map(Number));
const out = { tiles: 0, features: 0, layers: {}, found: {}, errors: [] };
for (const file of fs.readdirSync(dir).sort()) {
  const match = /^(\d+)-(\d+)-(\d+)\.pbf$/.exec(file);
  if (!match) continue;
  const [z, x, y] = match.slice(1).map(Number);
  try {
    const tile = new VectorTile(new Pbf(fs.readFileSync(path.join(dir, file))));
    out.tiles++;
    for (const [name, layer] of Object.entries(tile.layers)) {
      if (layer.extent !== 4096) out.errors.push(`${file} ${name}: extent ${layer.extent}`);
      if (layer.version !== 2) out.errors.push(`${file} ${name}: version ${layer.version}`);
      for (let i = 0; i < layer.length; i++) {
        const feature = layer.feature(i);
        feature.loadGeometry();  // throws on broken command encoding
        const geojson = feature.toGeoJSON(x, y, z);
        out.features++;
        out.layers[name] = (out.layers[name] || 0) + 1;
        if (wanted.has(feature.id)) {
          const key = `${name}:${feature.id}@${z}/${x}/${y}`;
          out.found[key] = { layer: name, properties: feature.properties, geometry: geojson.geometry };
        }
      }
    }
  } catch (e) {
    out.errors.push(`${file}: ${e.message}`);
  }
}
console.log(JSON.stringify(out));
