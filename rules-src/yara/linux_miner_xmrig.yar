// XMRig and its forks, the miner behind most cryptojacking on cloud servers.
rule Linux_Miner_XMRig_1
{
    meta:
        severity = "high"
        description = "XMRig Monero miner binary or configuration"
        author = "vigil rules team"
        reference = "https://github.com/xmrig/xmrig"
        date = "2026-11-25"
    strings:
        $a = "xmrig" nocase
        $b = "--donate-level" 
        $c = "\"donate-level\":"
        $d = "randomx" nocase
        $e = "cryptonight" nocase
        $f = "\"nicehash\":"
    condition:
        $a and 2 of ($b, $c, $d, $e, $f)
}
