# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_hpcs_pack_global_optspecs
    string join \n log-names h/help V/version
end

function __fish_hpcs_pack_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_hpcs_pack_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_hpcs_pack_using_subcommand
    set -l cmd (__fish_hpcs_pack_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -s V -l version -d 'Print version'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "pack" -d 'Pack a directory or a file into an encrypted archive'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "c4gh-ref" -d 'Make a reference archive over Crypt4GH (.c4gh) files that stay where they are (EGA, SD Connect downloads): every segment is authenticated once, and mounts then refuse any change to the files'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "inspect" -d 'Show header facts (no key needed); with -i, also the recipients and the tree'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "verify" -d 'Authenticate every chunk of an archive'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "extract" -d 'Extract an archive, or some paths of it, into a directory'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "cat" -d 'Write one file of an archive to standard output'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "rewrap" -d 'Change who can open an archive, without re-encrypting its data'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "rekey" -d 'Re-encrypt an archive under a new data key and archive id (revocation)'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "register" -d 'Store an existing archive\'s key in Vault for SPIFFE IDs (rewrites only the header)'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "allow" -d 'Change which SPIFFE IDs may fetch a dataset\'s key from Vault (Vault only)'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "revoke" -d 'Destroy a dataset\'s key in Vault (crypto-shredding): new mounts fail at once'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "vault-setup" -d 'Prepare a Vault/OpenBao for hpcs (administrator, once; idempotent)'
complete -c hpcs-pack -n "__fish_hpcs_pack_needs_command" -f -a "results" -d 'Check or decrypt a job\'s encrypted results (written through `hpcs-mount --output`)'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -s o -l output -d 'Archive to write' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -s r -l recipient -d 'Encrypt the data key to this recipient (repeatable)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -s R -l recipients-file -d 'Encrypt the data key to every recipient in this file (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l allow -d 'SPIFFE ID whose jobs may fetch the key (repeatable)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l dataset -d 'Dataset name, NAME (in your own space) or OWNER/NAME (default: the archive\'s file name without .hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-addr -d 'Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-cacert -d 'PEM file of CA certificates for Vault\'s TLS [env: BAO_CACERT, VAULT_CACERT]' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-namespace -d 'Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-mount -d 'KV v1 mount of the key records (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-auth-mount -d 'JWT auth mount the jobs log in to (default: hpcs-jwt)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l audience -d 'JWT-SVID audience the site\'s Vault expects (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-login -d 'Log in with a password instead of using a token' -r -f -a "userpass\t''
ldap\t''
token\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-login-mount -d 'Auth mount of --vault-login (default: the method\'s name)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-user -d 'User name for --vault-login userpass|ldap (default: $USER)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-password-file -d 'Read the password from this file\'s first line instead of the terminal' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault-retry-secs -d 'Seconds to keep retrying while Vault is unreachable (default: 30)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l cipher -d 'Cipher suite for all chunks' -r -f -a "aes-256-gcm\t''
chacha20-poly1305\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l chunk-size -d 'Plaintext bytes per chunk: a power of two from 4K to 16M' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -s f -l force -d 'Replace ARCHIVE if it exists'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -s q -l quiet -d 'No progress bar and no summary'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l vault -d 'Store the data key in Vault for the --allow\'ed SPIFFE IDs'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l replace -d 'Make this archive the current version of an already registered dataset: older archives of it are refused from then on'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand pack" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -s o -l output -d 'Reference archive to write (small: about 16 bytes per 64 KiB of data)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l sk -d 'Your Crypt4GH secret key file (as crypt4gh-keygen writes it)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l passphrase-file -d 'Read the key\'s passphrase from the first line of this file' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -s r -l recipient -d 'Encrypt the data key to this recipient (repeatable)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -s R -l recipients-file -d 'Encrypt the data key to every recipient in this file (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l allow -d 'SPIFFE ID whose jobs may fetch the key (repeatable)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l dataset -d 'Dataset name, NAME (in your own space) or OWNER/NAME (default: the archive\'s file name without .hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-addr -d 'Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-cacert -d 'PEM file of CA certificates for Vault\'s TLS [env: BAO_CACERT, VAULT_CACERT]' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-namespace -d 'Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-mount -d 'KV v1 mount of the key records (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-auth-mount -d 'JWT auth mount the jobs log in to (default: hpcs-jwt)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l audience -d 'JWT-SVID audience the site\'s Vault expects (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-login -d 'Log in with a password instead of using a token' -r -f -a "userpass\t''
ldap\t''
token\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-login-mount -d 'Auth mount of --vault-login (default: the method\'s name)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-user -d 'User name for --vault-login userpass|ldap (default: $USER)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-password-file -d 'Read the password from this file\'s first line instead of the terminal' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault-retry-secs -d 'Seconds to keep retrying while Vault is unreachable (default: 30)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l cipher -d 'Cipher suite of the archive (the .c4gh files keep theirs)' -r -f -a "aes-256-gcm\t''
chacha20-poly1305\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -s f -l force -d 'Replace ARCHIVE if it exists'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -s q -l quiet -d 'No progress bar and no summary'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l vault -d 'Store the data key in Vault for the --allow\'ed SPIFFE IDs'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l replace -d 'Make this archive the current version of an already registered dataset: older archives of it are refused from then on'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l absolute -d 'Record absolute paths of the .c4gh files (default: relative to the archive\'s directory, so archive and data can move together)'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand c4gh-ref" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand inspect" -s i -l identity -d 'Identity file that can open the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand inspect" -l json -d 'Print the facts as JSON instead of text'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand inspect" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand verify" -s i -l identity -d 'Identity file that can open the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand verify" -s q -l quiet -d 'No progress bar and no summary'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand verify" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand extract" -s i -l identity -d 'Identity file that can open the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand extract" -s o -l output -d 'Directory to extract into (created if missing; existing files are never overwritten)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand extract" -s q -l quiet -d 'No progress bar and no summary'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand extract" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand extract" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand cat" -s i -l identity -d 'Identity file that can open the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand cat" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand cat" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -s i -l identity -d 'Identity file that can open the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -s r -l recipient -d 'Add this recipient (repeatable; same forms as `pack -r`)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -s R -l recipients-file -d 'Add every recipient in this file (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -l remove-recipient -d 'Remove this recipient (repeatable; as it was given when packing). With rewrap this is not revocation (see `rewrap --help`); with rekey it is' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -s o -l output -d 'Write the rewrapped archive here instead of replacing ARCHIVE' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -s f -l force -d 'Replace the -o output if it exists'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -s q -l quiet -d 'No summary'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rewrap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -s i -l identity -d 'Identity file that can open the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -s r -l recipient -d 'Add this recipient (repeatable; same forms as `pack -r`)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -s R -l recipients-file -d 'Add every recipient in this file (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l remove-recipient -d 'Remove this recipient (repeatable; as it was given when packing). With rewrap this is not revocation (see `rewrap --help`); with rekey it is' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -s o -l output -d 'Write the rewrapped archive here instead of replacing ARCHIVE' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-addr -d 'Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-cacert -d 'PEM file of CA certificates for Vault\'s TLS [env: BAO_CACERT, VAULT_CACERT]' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-namespace -d 'Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-mount -d 'KV v1 mount of the key records (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-auth-mount -d 'JWT auth mount the jobs log in to (default: hpcs-jwt)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l audience -d 'JWT-SVID audience the site\'s Vault expects (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-login -d 'Log in with a password instead of using a token' -r -f -a "userpass\t''
ldap\t''
token\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-login-mount -d 'Auth mount of --vault-login (default: the method\'s name)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-user -d 'User name for --vault-login userpass|ldap (default: $USER)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-password-file -d 'Read the password from this file\'s first line instead of the terminal' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l vault-retry-secs -d 'Seconds to keep retrying while Vault is unreachable (default: 30)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -s f -l force -d 'Replace the -o output if it exists'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -s q -l quiet -d 'No summary'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand rekey" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -s i -l identity -d 'Identity file that opens the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l allow -d 'SPIFFE ID whose jobs may fetch the key (repeatable, at least one)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l dataset -d 'Dataset name, NAME or OWNER/NAME (default: from the archive\'s Vault stanza, else its file name without .hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-addr -d 'Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-cacert -d 'PEM file of CA certificates for Vault\'s TLS [env: BAO_CACERT, VAULT_CACERT]' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-namespace -d 'Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-mount -d 'KV v1 mount of the key records (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-auth-mount -d 'JWT auth mount the jobs log in to (default: hpcs-jwt)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l audience -d 'JWT-SVID audience the site\'s Vault expects (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-login -d 'Log in with a password instead of using a token' -r -f -a "userpass\t''
ldap\t''
token\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-login-mount -d 'Auth mount of --vault-login (default: the method\'s name)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-user -d 'User name for --vault-login userpass|ldap (default: $USER)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-password-file -d 'Read the password from this file\'s first line instead of the terminal' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l vault-retry-secs -d 'Seconds to keep retrying while Vault is unreachable (default: 30)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l replace -d 'Make this archive the current version of an already registered dataset'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -s q -l quiet -d 'No summary'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand register" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l add -d 'Allow this SPIFFE ID (repeatable)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l remove -d 'Stop allowing this SPIFFE ID (repeatable); its key copy is destroyed' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-addr -d 'Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-cacert -d 'PEM file of CA certificates for Vault\'s TLS [env: BAO_CACERT, VAULT_CACERT]' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-namespace -d 'Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-mount -d 'KV v1 mount of the key records (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-auth-mount -d 'JWT auth mount the jobs log in to (default: hpcs-jwt)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l audience -d 'JWT-SVID audience the site\'s Vault expects (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-login -d 'Log in with a password instead of using a token' -r -f -a "userpass\t''
ldap\t''
token\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-login-mount -d 'Auth mount of --vault-login (default: the method\'s name)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-user -d 'User name for --vault-login userpass|ldap (default: $USER)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-password-file -d 'Read the password from this file\'s first line instead of the terminal' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l vault-retry-secs -d 'Seconds to keep retrying while Vault is unreachable (default: 30)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand allow" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-addr -d 'Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-cacert -d 'PEM file of CA certificates for Vault\'s TLS [env: BAO_CACERT, VAULT_CACERT]' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-namespace -d 'Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-mount -d 'KV v1 mount of the key records (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-auth-mount -d 'JWT auth mount the jobs log in to (default: hpcs-jwt)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l audience -d 'JWT-SVID audience the site\'s Vault expects (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-login -d 'Log in with a password instead of using a token' -r -f -a "userpass\t''
ldap\t''
token\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-login-mount -d 'Auth mount of --vault-login (default: the method\'s name)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-user -d 'User name for --vault-login userpass|ldap (default: $USER)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-password-file -d 'Read the password from this file\'s first line instead of the terminal' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l vault-retry-secs -d 'Seconds to keep retrying while Vault is unreachable (default: 30)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l yes -d 'Do not ask for confirmation (required when stdin is not a terminal)'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l jwks-url -d 'JWKS URL of the SPIFFE trust domain (SPIRE OIDC discovery provider `https://…/keys`, or a JWKS bundle endpoint)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l oidc-discovery-url -d 'OIDC discovery URL (SPIRE OIDC discovery provider)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l jwt-pubkey -d 'Static JWT public key in PEM (repeatable); update on key rotation' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l jwks-ca -d 'PEM CA bundle for the JWKS / OIDC discovery URL\'s TLS' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l bound-issuer -d 'Required `iss` claim (only if your SVIDs carry one)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l user-auth-mount -d 'Auth mount data owners log in with (repeatable; default: userpass)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l workload-token-ttl -d 'Lifetime of a job\'s Vault token (hpcs-mount revokes it sooner)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-addr -d 'Vault/OpenBao address [env: BAO_ADDR, VAULT_ADDR]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-cacert -d 'PEM file of CA certificates for Vault\'s TLS [env: BAO_CACERT, VAULT_CACERT]' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-namespace -d 'Vault namespace [env: BAO_NAMESPACE, VAULT_NAMESPACE]' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-mount -d 'KV v1 mount of the key records (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-auth-mount -d 'JWT auth mount the jobs log in to (default: hpcs-jwt)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l audience -d 'JWT-SVID audience the site\'s Vault expects (default: hpcs)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-login -d 'Log in with a password instead of using a token' -r -f -a "userpass\t''
ldap\t''
token\t''"
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-login-mount -d 'Auth mount of --vault-login (default: the method\'s name)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-user -d 'User name for --vault-login userpass|ldap (default: $USER)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-password-file -d 'Read the password from this file\'s first line instead of the terminal' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l vault-retry-secs -d 'Seconds to keep retrying while Vault is unreachable (default: 30)' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l enable-userpass -d 'Enable userpass at a --user-auth-mount that does not exist yet'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand vault-setup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and not __fish_seen_subcommand_from verify decrypt" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and not __fish_seen_subcommand_from verify decrypt" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and not __fish_seen_subcommand_from verify decrypt" -f -a "verify" -d 'Check every result in DIR: complete and authentic, incomplete (interrupted job), or tampered; decrypts nothing to disk'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and not __fish_seen_subcommand_from verify decrypt" -f -a "decrypt" -d 'Decrypt the complete, authentic results in DIR into DEST (existing files are never overwritten) and report the others'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from verify" -l archive -d 'The archive the job mounted first: its key proves the results come from the job and not from anyone who knows your public key' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from verify" -s i -l identity -d 'Identity file that can open the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from verify" -l sk -d 'Your Crypt4GH secret key file (as crypt4gh-keygen writes it)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from verify" -l passphrase-file -d 'Read the key\'s passphrase from the first line of this file' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from verify" -l expect-run -d 'Require exactly these runs (repeatable; the run ids hpcs-job printed, `hpcs-mount --output-run`). Results of any other run, authentic or not (anybody holding the archive key can write a whole run), or an expected run without results, end with exit 19 before anything is decrypted' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print only problems'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from verify" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -l archive -d 'The archive the job mounted first: its key proves the results come from the job and not from anyone who knows your public key' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -s i -l identity -d 'Identity file that can open the archive (repeatable)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -l sk -d 'Your Crypt4GH secret key file (as crypt4gh-keygen writes it)' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -l passphrase-file -d 'Read the key\'s passphrase from the first line of this file' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -l expect-run -d 'Require exactly these runs (repeatable; the run ids hpcs-job printed, `hpcs-mount --output-run`). Results of any other run, authentic or not (anybody holding the archive key can write a whole run), or an expected run without results, end with exit 19 before anything is decrypted' -r
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -s o -l output -d 'Directory to write the results into (created if missing). With results from several mounts (e.g. several nodes), each mount\'s files go under run-RUN/' -r -F
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -s q -l quiet -d 'Print only problems'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -l as-c4gh -d 'Write Crypt4GH results (jobs run with --output-c4gh-recipient) as checked copies of their Crypt4GH files, at PATH.c4gh, instead of decrypting them: ready to upload to EGA or SD Connect as they are'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -l log-names -d 'Show names, paths and sizes from archives and results in messages'
complete -c hpcs-pack -n "__fish_hpcs_pack_using_subcommand results; and __fish_seen_subcommand_from decrypt" -s h -l help -d 'Print help (see more with \'--help\')'
