// Images: the viewer follows the newest image ("live") until the operator opens an
// older one; "Back to live" returns to following. The gallery pages back through
// every image of the rover ("Older images").
//
// Opening one streams the download with fetch + a body reader: the <progress>
// shows real bytes received of Content-Length, and the part received so far is
// shown as it arrives (a browser draws a truncated image as far as it goes), so a
// big image appears progressively; then the full file is shown from a blob: URL,
// with a full-size view and a download link.
import { fmtBytes, fmtFull, fmtTime, getJSON, h } from "./util.js";

const PAGE_SIZE = 12;
const PARTIAL_EVERY_MS = 300;

export class ImagesPanel {
  constructor(root, { cameras = {} } = {}) {
    this.root = root;
    this.cameras = cameras;
    this.main = root.querySelector("#image-main");
    this.figure = root.querySelector("#image-newest");
    this.caption = root.querySelector("#image-caption");
    this.download = root.querySelector("#image-download");
    this.progress = root.querySelector("#image-progress");
    this.progressText = root.querySelector("#image-progress-text");
    this.gallery = root.querySelector("#image-gallery");
    this.liveButton = root.querySelector("#image-live");
    this.fullButton = root.querySelector("#image-full");
    this.saveLink = root.querySelector("#image-save");
    this.olderButton = root.querySelector("#image-older");
    this.images = [];
    this.blobUrl = null;
    this.controller = null;
    this.shownId = null;
    this.live = true;
    this.page = 0;
    this.count = 0;
    this.hasOlder = false;
    this.liveButton.addEventListener("click", () => this.backToLive());
    this.olderButton.addEventListener("click", () => this.loadOlder());
    this.fullButton.addEventListener("click", () => this.toggleFull());
  }

  async load(slug) {
    this.slug = slug;
    this.images = [];
    this.shownId = null;
    this.live = true;
    this.page = 0;
    this.count = 0;
    this.hasOlder = false;
    this.setFull(false);
    this.render();
    await this.loadOlder();
  }

  /** Fetch the next page back (newest first) and add it to the gallery. */
  async loadOlder() {
    const slug = this.slug;
    this.olderButton.disabled = true;
    try {
      const page = await getJSON(`/api/rovers/${encodeURIComponent(slug)}/images?page=${this.page + 1}&limit=${PAGE_SIZE}`);
      if (slug !== this.slug) return;
      this.page = page.page;
      this.count = page.count;
      this.hasOlder = Boolean(page.next);
      for (const image of page.results) this.add(image, { quiet: true });
    } catch (error) {
      console.warn("image list unavailable:", error.message);
    } finally {
      this.olderButton.disabled = false;
    }
    this.render();
  }

  /** Fetch the newest page again and add what is new (images are kept by id). */
  async refresh(slug) {
    try {
      const page = await getJSON(`/api/rovers/${encodeURIComponent(slug)}/images?page=1&limit=${PAGE_SIZE}`);
      if (slug === this.slug) for (const image of page.results) this.add(image);
    } catch (error) {
      console.warn("image list unavailable:", error.message);
    }
  }

  add(image, { quiet = false } = {}) {
    if (image.rover && image.rover !== this.slug) return;
    if (this.images.some((known) => known.id === image.id)) return;
    this.images.push(image);
    this.images.sort((a, b) => Date.parse(b.captured_at) - Date.parse(a.captured_at) || b.id - a.id);
    if (!quiet) {
      this.count += 1;
      this.render();
    }
  }

  camera(image) {
    return this.cameras[image.camera] || image.camera;
  }

  label(image) {
    return `${this.camera(image)} · ${fmtTime(image.captured_at)} · ${image.width}×${image.height} px · ${fmtBytes(image.size)}`;
  }

  backToLive() {
    if (this.controller) this.controller.abort();
    this.live = true;
    this.shownId = null;
    this.download.hidden = true;
    delete this.root.dataset.download;
    this.setFull(false);
    this.render();
  }

  setFull(full) {
    this.figure.dataset.full = String(full);
    this.fullButton.textContent = full ? "Fit to panel" : "Full size";
    this.fullButton.setAttribute("aria-pressed", String(full));
  }

  toggleFull() {
    this.setFull(this.figure.dataset.full !== "true");
  }

  render() {
    const newest = this.images[0];
    this.root.dataset.live = String(this.live);
    this.liveButton.hidden = this.live;
    this.fullButton.hidden = this.shownId === null;
    this.saveLink.hidden = this.shownId === null;
    if (this.live) {
      // Following the newest: preview its thumbnail until one is opened.
      if (newest) {
        this.main.src = newest.thumbnail_url;
        this.main.alt = `Newest image: ${this.label(newest)}`;
        this.main.hidden = false;
        this.main.title = fmtFull(newest.captured_at);
        this.caption.textContent = `Newest: ${this.label(newest)} (choose a thumbnail to open it)`;
      } else {
        this.main.hidden = true;
        this.caption.textContent = "No image yet: images appear here as the rover sends them.";
      }
    }
    this.olderButton.hidden = !this.hasOlder;
    this.olderButton.textContent = `Older images (${this.images.length} of ${this.count} shown)`;
    this.gallery.replaceChildren(
      ...this.images.map((image, index) => {
        const button = h(
          "button",
          {
            className: "thumb",
            attrs: {
              type: "button",
              "data-image-id": image.id,
              title: `${this.camera(image)} · ${fmtFull(image.captured_at)}`,
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

  showBlob(chunks, type) {
    const url = URL.createObjectURL(new Blob(chunks, { type }));
    if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
    this.blobUrl = url;
    this.main.src = url;
    this.main.hidden = false;
  }

  async open(image) {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.shownId = image.id;
    this.live = false;
    this.render();
    this.download.hidden = false;
    this.progress.max = image.size || 1;
    this.progress.value = 0;
    this.progressText.textContent = `Downloading ${fmtBytes(image.size)}…`;
    this.saveLink.href = image.url;
    this.saveLink.download = `${image.rover || this.slug}-${image.id}`;
    this.caption.textContent = `Opening ${this.label(image)}…`;
    this.root.dataset.download = "running";
    try {
      const response = await fetch(image.url, { credentials: "same-origin", signal: controller.signal });
      if (!response.ok) throw new Error(`the download answered ${response.status}`);
      const total = Number(response.headers.get("Content-Length")) || image.size;
      const type = response.headers.get("Content-Type") || image.content_type;
      this.progress.max = total;
      const reader = response.body.getReader();
      const chunks = [];
      let received = 0;
      let shownAt = performance.now();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        received += value.byteLength;
        this.progress.value = received;
        this.progressText.textContent = `${fmtBytes(received)} of ${fmtBytes(total)}`;
        if (performance.now() - shownAt > PARTIAL_EVERY_MS) {
          this.showBlob(chunks, type); // the part received so far
          this.root.dataset.partial = "true";
          shownAt = performance.now();
        }
      }
      this.showBlob(chunks, type);
      this.main.alt = `Image ${this.label(image)}`;
      this.main.title = fmtFull(image.captured_at);
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
