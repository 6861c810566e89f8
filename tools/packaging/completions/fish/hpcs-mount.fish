complete -c hpcs-mount -s i -l identity -d 'Age identity file (or unencrypted OpenSSH private key) that opens the archive (repeatable)' -r -F
complete -c hpcs-mount -l archive -d 'Mount this archive as directory NAME under the mount point (repeatable)' -r
complete -c hpcs-mount -l pin -d 'Refuse the archive unless it has this pin (`hpcs-pack inspect` prints it): `--pin PIN` for the one ARCHIVE, `--pin NAME=PIN` per --archive (repeatable)' -r
complete -c hpcs-mount -l output -d 'Add a write-only results directory NAME next to the archives; every file written there is encrypted as it is written, into DIR' -r
complete -c hpcs-mount -l output-recipient -d 'Recipient of the results (age1…, ssh-ed25519 …, ssh-rsa …; repeatable)' -r
complete -c hpcs-mount -l output-run -d 'Use this run id (32 hex digits) for the results instead of a random one, so that you know it in advance and can require it with `hpcs-pack results decrypt --expect-run RUN` (hpcs-job does this). Refused (39) if DIR already holds a manifest of this run' -r
complete -c hpcs-mount -l output-recipients-file -d 'File of results recipients, one per line (as `age -R` reads; repeatable)' -r -F
complete -c hpcs-mount -l output-c4gh-recipient -d 'Encrypt the results with Crypt4GH to this public key file instead of age (repeatable; as crypt4gh-keygen writes it)' -r -F
complete -c hpcs-mount -l scratch -d 'Add an encrypted, read-write scratch directory NAME next to the archives, stored in DIR; SIZE (K, M, G, T) limits the data it holds' -r
complete -c hpcs-mount -l cache-size -d 'Upper bound of the decrypted-chunk cache shared by all open files' -r
complete -c hpcs-mount -l readahead -d 'Read-ahead per sequentially read file (0 turns it off)' -r
complete -c hpcs-mount -l kernel-readahead -d 'Kernel read-ahead of the mount for buffered reads (root only)' -r
complete -c hpcs-mount -l threads -d 'FUSE request threads (default: 2 per CPU, 2 to 16)' -r
complete -c hpcs-mount -l prefetch-threads -d 'Read-ahead threads: backing reads of 1 MiB in flight at once (default: 8 per CPU, 16 to 64). Raise it on high-latency storage' -r
complete -c hpcs-mount -l ready-fd -d 'Write "ready\\n" to this inherited file descriptor when the mount is ready, then close it' -r
complete -c hpcs-mount -l pidfile -d 'Write the serving process\'s pid to this file when the mount is ready; removed on exit' -r -F
complete -c hpcs-mount -l watch-pid -d 'Unmount and exit when process PID exits' -r
complete -c hpcs-mount -l log-file -d 'Send log lines to this file instead of standard error (appended)' -r -F
complete -c hpcs-mount -l unmount -d 'Unmount an hpcs mount (the daemon serving it then exits 0)' -r -F
complete -c hpcs-mount -l vault-dataset -d 'Refuse (exit 18, before any call to Vault) unless the archive names this dataset: `--vault-dataset OWNER/NAME` for the one ARCHIVE, `--vault-dataset NAME=OWNER/NAME` per --archive NAME (repeatable). OWNER is the data owner\'s Vault entity id, as `hpcs-pack inspect` shows the dataset. Implies --vault for that archive. hpcs-job always passes it with --vault' -r
complete -c hpcs-mount -l audience -d 'JWT-SVID audience (default: config file, else the archive\'s, else hpcs)' -r
complete -c hpcs-mount -l vault-addr -d 'Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR]' -r
complete -c hpcs-mount -l vault-cacert -d 'PEM CA bundle for Vault\'s TLS [env: BAO_CACERT, VAULT_CACERT]' -r -F
complete -c hpcs-mount -l vault-namespace -d 'Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE]' -r
complete -c hpcs-mount -l vault-mount -d 'KV mount of the key records (default: the archive\'s)' -r
complete -c hpcs-mount -l vault-auth-mount -d 'JWT auth mount (default: the archive\'s)' -r
complete -c hpcs-mount -l vault-retry-secs -d 'Seconds to keep retrying while Vault or the Workload API is unavailable (connection refused, 5xx, 429); default 30' -r
complete -c hpcs-mount -l spiffe-socket -d 'Workload API endpoint, unix:///path [env: SPIFFE_ENDPOINT_SOCKET]' -r
complete -c hpcs-mount -l allow-unlocked-memory -d 'Mount even if decrypted data cannot be locked in RAM (RISK: plaintext may be written to swap)'
complete -c hpcs-mount -l direct-io -d 'Always bypass the kernel page cache (FOPEN_DIRECT_IO)'
complete -c hpcs-mount -l page-cache -d 'Always use the kernel page cache (the default on kernels older than 6.6)'
complete -c hpcs-mount -l allow-other -d 'Let other users access the mount (FUSE allow_other)'
complete -c hpcs-mount -l allow-root -d 'Let root (but no other user) access the mount'
complete -c hpcs-mount -l daemon -d 'Return once the mount is ready and keep serving in the background'
complete -c hpcs-mount -l no-watch -d 'Do not watch any process (keep serving until unmounted or signalled)'
complete -c hpcs-mount -s v -l verbose -d 'More log lines (-v info, -vv debug). Log lines name the archive, the entry number and the chunk, never names, sizes, contents or keys (see --log-names)'
complete -c hpcs-mount -l log-names -d 'Show names, paths and sizes from the archives and results in log lines'
complete -c hpcs-mount -l lazy -d 'With --unmount: detach even if files are still open (lazy unmount)'
complete -c hpcs-mount -l vault -d 'Get the key from Vault even when -i identities are given'
complete -c hpcs-mount -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-mount -s V -l version -d 'Print version'
