// Downloads one file with huggingface.js (@huggingface/hub) and prints
// {"sha256": …, "size": …, "xet": bool, "ranges": [sha256 of each slice]} as one JSON line.
// Usage: node download.mjs HUB_URL REPO PATH REVISION [START:END ...]   (END exclusive)
import { createHash } from "node:crypto";
import { downloadFile, fileDownloadInfo } from "@huggingface/hub";

const [hubUrl, repo, path, revision, ...slices] = process.argv.slice(2);
const accessToken = process.env.HF_TOKEN || undefined;
const info = await fileDownloadInfo({ repo, path, revision, hubUrl, accessToken });
const blob = await downloadFile({ repo, path, revision, hubUrl, accessToken, downloadInfo: info });
const sha = (buf) => createHash("sha256").update(Buffer.from(buf)).digest("hex");
const ranges = [];
for (const s of slices) {
  const [a, b] = s.split(":").map(Number);
  ranges.push(sha(await blob.slice(a, b).arrayBuffer()));
}
const all = await blob.arrayBuffer();
console.log(JSON.stringify({ sha256: sha(all), size: all.byteLength, xet: Boolean(info.xet), ranges }));
