// Mining pool endpoints and stratum URLs inside scripts, configs or binaries.
rule Multi_Miner_PoolStrings_1
{
    meta:
        severity = "medium"
        description = "Stratum URL pointing at a public Monero mining pool"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/techniques/T1496/"
        date = "2026-11-25"
    strings:
        $stratum = /stratum\+(tcp|ssl|tls):\/\/[a-z0-9.\-]{4,64}:[0-9]{2,5}/ nocase
        $p1 = "pool.minexmr.com" nocase
        $p2 = "supportxmr.com" nocase
        $p3 = "xmr.nanopool.org" nocase
        $p4 = "moneroocean.stream" nocase
        $p5 = "pool.hashvault.pro" nocase
        $p6 = "c3pool.com" nocase
    condition:
        $stratum and any of ($p*)
}
