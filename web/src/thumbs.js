// Live thumbnails of running VMs' screens (GET /vms/{id}/screenshot). One
// is fetched only while its image is on screen and the tab is visible, at
// most every refreshMs, so a long list of VMs costs the server nothing
// until it is looked at.
const refreshMs = 5000;
const thumbs = new Map(); // vm id -> {img, url, visible, next}
let timer = null;

const io =
  'IntersectionObserver' in window
    ? new IntersectionObserver((entries) => {
        for (const e of entries) {
          const t = thumbs.get(e.target.dataset.thumb);
          if (t) t.visible = e.isIntersecting;
        }
        tick();
      })
    : null;

async function load(id, t) {
  t.next = Date.now() + refreshMs;
  try {
    const res = await fetch(`/api/v1/vms/${encodeURIComponent(id)}/screenshot`, { credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 429) {
      // Over the per-user budget: wait out the window the server names.
      t.next = Date.now() + 1000 * (Number(res.headers.get('Retry-After')) || 60);
      return;
    }
    if (!res.ok || res.headers.get('Content-Type') !== 'image/png') return;
    const url = URL.createObjectURL(await res.blob());
    if (thumbs.get(id) !== t) {
      URL.revokeObjectURL(url);
      return;
    }
    if (t.url) URL.revokeObjectURL(t.url);
    t.url = url;
    t.img.src = url;
  } catch {
    // vmd is unreachable: the dashboard's own poll says so.
  }
}

function tick() {
  clearTimeout(timer);
  if (document.visibilityState !== 'visible') return;
  const now = Date.now();
  for (const [id, t] of thumbs) {
    if ((t.visible || !io) && now >= t.next) load(id, t);
  }
  timer = setTimeout(tick, 1000);
}

// thumb returns the thumbnail image of a running VM, the same element for
// the same VM, so rebuilding its row keeps the last picture.
export function thumb(id, name) {
  let t = thumbs.get(id);
  if (!t) {
    const img = document.createElement('img');
    img.className = 'thumb';
    img.alt = `Screen of ${name}`;
    img.dataset.thumb = id;
    // Blank until the first picture; visible all along, since a hidden
    // element never intersects and would never be fetched.
    img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==';
    img.width = 96;
    img.height = 54;
    t = { img, url: '', visible: false, next: 0 };
    thumbs.set(id, t);
    if (io) io.observe(img);
  }
  return t.img;
}

// keepThumbs forgets the thumbnails of VMs no longer running.
export function keepThumbs(ids) {
  for (const [id, t] of thumbs) {
    if (ids.has(id)) continue;
    if (io) io.unobserve(t.img);
    if (t.url) URL.revokeObjectURL(t.url);
    thumbs.delete(id);
  }
  tick();
}

document.addEventListener('visibilitychange', tick);
