"""The SSRF guard: which addresses and URLs are refused, with DNS answered by an injected resolver."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langgraph_wideseek.tools.netguard import NetGuard, URLRefused, refusal_reason


def resolver_for(table: dict[str, list[str]]):
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append((host, port))
        if host not in table:
            raise OSError("Name or service not known")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("0.1.2.3", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.170.2", "metadata"),
    ("100.100.100.200", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("192.0.2.1", "special-purpose"),
    ("198.18.0.1", "special-purpose"),
    ("2001:db8::1", "special-purpose"),
    # IPv6 forms that carry an IPv4 address route to it: the IPv4 inside decides.
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:7f00:1", "loopback"),
    ("2002:7f00:1::", "loopback"),
    ("2002:a9fe:a9fe::1", "metadata"),
    ("64:ff9b::a00:1", "private"),
    ("64:ff9b::7f00:1", "loopback"),
    ("::127.0.0.1", "loopback"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81b::200e",
    "::ffff:8.8.8.8",
    "2002:0808:0808::1",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address,why", REFUSED)
def test_refused_addresses_name_the_reason(address: str, why: str) -> None:
    reason = refusal_reason(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) is None


@given(
    st.sampled_from(
        [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
            "fe80::/10",
            "::1/128",
        ]
    ),
    st.integers(min_value=0),
)
def test_every_address_of_a_refused_network_is_refused(net: str, n: int) -> None:
    network = ipaddress.ip_network(net)
    ip = network[n % network.num_addresses]
    assert refusal_reason(ip) is not None
    if ip.version == 4:  # and the same address written as IPv4-mapped IPv6
        assert refusal_reason(ipaddress.ip_address(f"::ffff:{ip}")) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://[::1]:8080/x",
        "https://10.0.0.7/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0:22/",
        # Legacy IPv4 spellings that getaddrinfo would accept without DNS.
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f000001/",
    ],
)
async def test_ip_literal_urls_are_refused_without_dns(url: str) -> None:
    resolve = resolver_for({})
    with pytest.raises(URLRefused, match="refused to read|not valid"):
        await NetGuard(resolver=resolve).check(url)
    assert resolve.calls == []


@pytest.mark.parametrize(
    "url,fragment",
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/x", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("http:///nohost", "no host"),
        ("data:text/html,hi", "only http and https"),
        ("http://exa mple.com/", "not valid"),
        ("http://a%2fb.example/", "not valid"),
        ("http://[zz::1]/", "not valid"),
    ],
)
async def test_bad_schemes_and_urls_are_refused(url: str, fragment: str) -> None:
    with pytest.raises(URLRefused, match=fragment):
        await NetGuard(resolver=resolver_for({})).check(url)


async def test_names_are_checked_after_resolution_and_the_checked_address_is_pinned() -> None:
    resolve = resolver_for(
        {
            "public.example": ["93.184.215.14"],
            "internal.example": ["10.0.0.5"],
            "localhost": ["127.0.0.1", "::1"],
            "mixed.example": ["93.184.215.14", "192.168.0.10"],  # one private record is enough to refuse
            "meta.example": ["169.254.169.254"],
            "v6mapped.example": ["::ffff:10.1.1.1"],
        }
    )
    guard = NetGuard(resolver=resolve)
    ok = await guard.check("https://public.example/a?b=1")
    assert ok.address == "93.184.215.14"
    assert str(ok.pinned_url) == "https://93.184.215.14/a?b=1"
    assert ok.host_header == "public.example" and ok.host == "public.example"
    assert resolve.calls == [("public.example", 443)]
    for host in ("internal.example", "localhost", "mixed.example", "meta.example", "v6mapped.example"):
        with pytest.raises(URLRefused, match=f"refused to read '{host}'"):
            await guard.check(f"http://{host}:8080/")


async def test_resolution_failures_are_refusals_with_a_clear_message() -> None:
    with pytest.raises(URLRefused, match="could not be resolved"):
        await NetGuard(resolver=resolver_for({})).check("http://nowhere.invalid/")

    async def empty(host: str, port: int) -> list[str]:
        return []

    with pytest.raises(URLRefused, match="has no address"):
        await NetGuard(resolver=empty).check("http://empty.example/")


async def test_allow_private_and_allowed_networks() -> None:
    resolve = resolver_for({"intranet.example": ["10.20.30.40"], "db.example": ["10.99.0.1"]})
    ok = await NetGuard(allow_private=True, resolver=resolve).check("http://127.0.0.1:9/")
    assert ok.address == "127.0.0.1"
    guard = NetGuard(allowed_networks=["10.20.0.0/16"], resolver=resolve)
    assert (await guard.check("http://intranet.example/")).address == "10.20.30.40"
    with pytest.raises(URLRefused):
        await guard.check("http://db.example/")
    with pytest.raises(URLRefused):
        await guard.check("http://169.254.169.254/")
    # Schemes stay refused even when private addresses are allowed.
    with pytest.raises(URLRefused, match="only http and https"):
        await NetGuard(allow_private=True).check("file:///etc/hosts")


async def test_ipv6_literal_is_pinned_with_brackets() -> None:
    ok = await NetGuard(allow_private=True).check("http://[::1]:8080/p")
    assert str(ok.pinned_url) == "http://[::1]:8080/p"
    assert ok.host_header == "[::1]:8080"


async def test_international_names_are_resolved_in_idna_form() -> None:
    resolve = resolver_for({"xn--bcher-kva.example": ["93.184.215.14"]})
    ok = await NetGuard(resolver=resolve).check("https://Bücher.example/x")
    assert ok.host == "xn--bcher-kva.example" and ok.host_header == "xn--bcher-kva.example"
    assert resolve.calls == [("xn--bcher-kva.example", 443)]
