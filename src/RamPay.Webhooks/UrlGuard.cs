using System.Net;
using System.Net.Sockets;

namespace RamPay.Webhooks;

/// <summary>
/// Server-side request forgery checks (docs/webhooks.md, "Security"): a webhook URL may not reach loopback, private,
/// link-local, carrier-grade NAT, multicast, unspecified or cloud-metadata addresses unless private networks are
/// allowed; <c>https</c> is required unless they are. Checked when a URL is registered and again at connect time on
/// every attempt (<see cref="ConnectAsync"/>, the handler's ConnectCallback), against the addresses the name resolves
/// to then: a name that later resolves to 127.0.0.1 is refused at that moment, and the connection goes to the very
/// address that was checked.
/// </summary>
public sealed class UrlGuard(bool allowPrivateNetworks, Func<string, CancellationToken, Task<IPAddress[]>>? resolve = null)
{
    private readonly Func<string, CancellationToken, Task<IPAddress[]>> _resolve = resolve ?? ((host, ct) => Dns.GetHostAddressesAsync(host, ct));

    public bool AllowPrivateNetworks => allowPrivateNetworks;

    /// <summary>Why <paramref name="url"/> may not be registered, or null when it may.</summary>
    public async Task<string?> CheckAsync(string url, CancellationToken cancellationToken)
    {
        if (url.Length > 2048) return "the URL is longer than 2048 characters";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || string.IsNullOrEmpty(uri.Host))
            return "the URL must be an absolute http(s) URL";
        if (uri.Scheme == "http" && !allowPrivateNetworks) return "the URL must use https";
        if (!string.IsNullOrEmpty(uri.UserInfo)) return "the URL may not carry a user name or password";
        if (uri.Fragment.Length > 0) return "the URL may not carry a fragment";
        IPAddress[] addresses;
        try
        {
            addresses = IPAddress.TryParse(uri.IdnHost, out var literal) ? [literal] : await _resolve(uri.IdnHost, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            return $"the host '{uri.Host}' does not resolve";
        }
        if (addresses.Length == 0) return $"the host '{uri.Host}' does not resolve";
        foreach (var a in addresses)
            if (!allowPrivateNetworks && IsForbidden(a)) return $"the host '{uri.Host}' resolves to {a}, a loopback, private, link-local or metadata address";
        return null;
    }

    /// <summary>
    /// The ConnectCallback of the dispatcher's handler: resolves the host now, refuses a forbidden address, and connects
    /// to an address it checked (never re-resolving), so DNS rebinding between check and connect is impossible.
    /// </summary>
    public async ValueTask<Stream> ConnectAsync(System.Net.Http.SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var endpoint = context.DnsEndPoint;
        IPAddress[] addresses = IPAddress.TryParse(endpoint.Host, out var literal) ? [literal] : await _resolve(endpoint.Host, cancellationToken).ConfigureAwait(false);
        var allowed = addresses.Where(a => allowPrivateNetworks || !IsForbidden(a)).ToArray();
        if (allowed.Length == 0)
            throw new WebhookRefusedException($"'{endpoint.Host}' resolves to {string.Join(", ", addresses.Select(a => a.ToString()))}: a loopback, private, link-local or metadata address (refused at connect time)");
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, endpoint.Port, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Loopback, private (RFC 1918, ULA), link-local (incl. 169.254.169.254, cloud metadata), CGNAT, multicast, unspecified, broadcast, documentation/benchmark ranges.</summary>
    public static bool IsForbidden(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.Broadcast)) return true;
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            byte[] b = address.GetAddressBytes();
            return b[0] switch
            {
                0 or 10 or 127 => true,
                100 => b[1] is >= 64 and <= 127,          // 100.64.0.0/10 carrier-grade NAT
                169 => b[1] == 254,                      // link-local, 169.254.169.254 metadata
                172 => b[1] is >= 16 and <= 31,
                192 => (b[1] == 168) || (b[1] == 0 && b[2] is 0 or 2) || (b[1] == 88 && b[2] == 99),
                198 => b[1] is 18 or 19 || (b[1] == 51 && b[2] == 100),
                203 => b[1] == 0 && b[2] == 113,
                >= 224 => true,                          // multicast and reserved
                _ => false,
            };
        }
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            if (address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast || address.IsIPv6UniqueLocal) return true;
            byte[] b = address.GetAddressBytes();
            if (b[0] == 0xfd && b[1] == 0x00 && b[2] == 0x0e && b[3] == 0xc2) return true; // fd00:ec2::254 (AWS metadata over IPv6) is ULA anyway
            if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return true; // documentation
            if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) return IsForbidden(new IPAddress(b[12..16])); // NAT64 of an IPv4
            return false;
        }
        return true;
    }
}

/// <summary>An attempt refused before any byte was sent (SSRF check at connect time).</summary>
public sealed class WebhookRefusedException(string message) : Exception(message);
