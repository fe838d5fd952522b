// Images: the newest image and a thumbnail gallery, live from `image` events.
// Opening one streams the download with fetch + a body reader, so the <progress>
// shows real bytes received of Content-Length, then shows it from a blob: URL.
import { fmtBytes, fmtTime, getJSON, h } from "./util.js";

const GALLERY_SIZE = 12;

export class ImagesPanel {
  constructor(root) {
    this.root = root;
    this.main = root.querySelector("#image-main");
    this.caption = root.querySelector("#image-caption");
    this.download = root.querySelector("#image-download");
    this.progress = root.querySelector("#image-progress");
    this.progressText = root.querySelector("#image-progress-text");
    this.gallery = root.querySelector("#image-gallery");
    this.images = [];
    this.blobUrl = null;
    this.controller = null;
    this.shownId = null;
  }

  async load(slug) {
    this.slug = slug;
    this.images = [];
    this.shownId = null;
    this.render();
    try {
      const page = await getJSON(`/api/rovers/${encodeURIComponent(slug)}/images?limit=${GALLERY_SIZE}`);
      if (slug !== this.slug) return;
      for (const image of page.results) this.add(image, { quiet: true });
    } catch (error) {
      console.warn("image list unavailable:", error.message);
    }
    this.render();
  }

  add(image, { quiet = false } = {}) {
    if (image.rover && image.rover !== this.slug) return;
    if (this.images.some((known) => known.id === image.id)) return;
    this.images.push(image);
    this.images.sort((a, b) => Date.parse(b.captured_at) - Date.parse(a.captured_at) || b.id - a.id);
    this.images.length = Math.min(this.images.length, GALLERY_SIZE);
    if (!quiet) this.render();
  }

  label(image) {
    return `${image.camera} · ${fmtTime(image.captured_at)} · ${image.width}×${image.height} · ${fmtBytes(image.size)}`;
  }

  render() {
    const newest = this.images[0];
    if (this.shownId === null) {
      // Nothing opened yet: preview the newest image's thumbnail.
      if (newest) {
        this.main.src = newest.thumbnail_url;
        this.main.alt = `Newest image: ${this.label(newest)}`;
        this.main.hidden = false;
        this.caption.textContent = `Newest: ${this.label(newest)} (choose a thumbnail to open it)`;
      } else {
        this.main.hidden = true;
        this.caption.textContent = "No image yet";
      }
    }
    this.gallery.replaceChildren(
      ...this.images.map((image, index) => {
        const button = h(
          "button",
          {
            className: "thumb",
            attrs: {
              type: "button",
              "data-image-id": image.id,
              "aria-label": `Open ${index === 0 ? "newest " : ""}image ${this.label(image)}`,
              "aria-current": image.id === this.shownId ? "true" : null,
            },
          },
          h("img", { attrs: { src: image.thumbnail_url, alt: "", loading: "lazy" } }),
        );
        button.addEventListener("click", () => this.open(image));
        return h("li", {}, button);
      }),
    );
  }

  async open(image) {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.shownId = image.id;
    this.render();
    this.download.hidden = false;
    this.progress.max = image.size || 1;
    this.progress.value = 0;
    this.progressText.textContent = `Downloading ${fmtBytes(image.size)}…`;
    this.root.dataset.download = "running";
    try {
      const response = await fetch(image.url, { credentials: "same-origin", signal: controller.signal });
      if (!response.ok) throw new Error(`the download answered ${response.status}`);
      const total = Number(response.headers.get("Content-Length")) || image.size;
      this.progress.max = total;
      const reader = response.body.getReader();
      const chunks = [];
      let received = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        received += value.byteLength;
        this.progress.value = received;
        this.progressText.textContent = `${fmtBytes(received)} of ${fmtBytes(total)}`;
      }
      const blob = new Blob(chunks, { type: response.headers.get("Content-Type") || image.content_type });
      if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
      this.blobUrl = URL.createObjectURL(blob);
      this.main.src = this.blobUrl;
      this.main.alt = `Image ${this.label(image)}`;
      this.main.hidden = false;
      this.caption.textContent = this.label(image);
      this.progressText.textContent = `${fmtBytes(received)} of ${fmtBytes(total)} · complete`;
      this.root.dataset.download = "complete";
    } catch (error) {
      if (error.name === "AbortError") return;
      this.progressText.textContent = `Download failed: ${error.message}`;
      this.root.dataset.download = "failed";
    }
  }
}
