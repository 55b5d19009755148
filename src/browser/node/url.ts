// node:url for the browser bundle: file URLs map onto the in-memory tree's paths.
export function fileURLToPath(url: string | URL): string {
  return decodeURIComponent(new URL(String(url)).pathname);
}
