// proxy-from-env ships no types. Its one function: the proxy URL for a URL from HTTP(S)_PROXY /
// ALL_PROXY, or '' when there is none or NO_PROXY names the host.
declare module 'proxy-from-env' {
  export function getProxyForUrl(url: string | URL): string;
}
