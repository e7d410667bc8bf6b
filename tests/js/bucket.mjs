// Reads a Storage Bucket with huggingface.js (@huggingface/hub) and prints one JSON line:
// {"files": [paths of a recursive listing], "exists": bool, "missing": bool, "sha256": …, "size": …}
// Usage: node bucket.mjs HUB_URL BUCKET_ID PATH
import { createHash } from "node:crypto";
import { downloadFile, fileExists, listFiles } from "@huggingface/hub";

const [hubUrl, id, path] = process.argv.slice(2);
const accessToken = process.env.HF_TOKEN || undefined;
const repo = `buckets/${id}`;
const files = [];
for await (const f of listFiles({ repo, recursive: true, hubUrl, accessToken })) {
  if (f.type === "file") files.push(f.path);
}
const exists = await fileExists({ repo, path, hubUrl, accessToken });
const missing = await fileExists({ repo, path: "no/such/file.txt", hubUrl, accessToken });
const blob = await downloadFile({ repo, path, hubUrl, accessToken });
const all = await blob.arrayBuffer();
const sha256 = createHash("sha256").update(Buffer.from(all)).digest("hex");
console.log(JSON.stringify({ files, exists, missing, sha256, size: all.byteLength }));
