complete -c hpcs-job -l data -d 'Data archive to mount, as ARCHIVE[:NAME][@PIN] (repeatable)' -r
complete -c hpcs-job -l container -d 'Container archive to mount (a packed SIF image or root filesystem), as ARCHIVE or ARCHIVE:NAME (default NAME: container)' -r
complete -c hpcs-job -l secret-script -d 'Archive holding the real (secret) job script, as ARCHIVE or ARCHIVE:NAME (default NAME: job)' -r
complete -c hpcs-job -l secret-entry -d 'Path of the script to run inside the --secret-script archive' -r
complete -c hpcs-job -s i -l identity -d 'age identity file that opens the archives (passed to hpcs-mount -i)' -r -F
complete -c hpcs-job -l audience -d 'Audience of the JWT-SVID used with --vault (passed to hpcs-mount as --audience; default: hpcs-mount\'s)' -r
complete -c hpcs-job -l app -d 'Application to run once the archives are mounted and verified' -r
complete -c hpcs-job -l app-arg -d 'One argument of the application (repeatable, in order; may contain {root})' -r
complete -c hpcs-job -l verify-input -d 'Input verification script (repeatable, run in order before the application, with the archives mounted)' -r
complete -c hpcs-job -l verify-output -d 'Output verification script (repeatable, run in order after the application succeeded)' -r
complete -c hpcs-job -l nodes -d 'Number of nodes (#SBATCH --nodes)' -r
complete -c hpcs-job -l partition -d 'Partition (#SBATCH --partition)' -r
complete -c hpcs-job -l time -d 'Time limit (#SBATCH --time), e.g. 30, 1:00:00 or 1-00:00:00' -r
complete -c hpcs-job -l account -d 'Account to charge (#SBATCH --account)' -r
complete -c hpcs-job -l nodelist -d 'Nodes to run on (#SBATCH --nodelist), e.g. node[01-04]' -r
complete -c hpcs-job -l workdir -d 'Working directory of the job (#SBATCH --chdir); relative paths are made absolute' -r -F
complete -c hpcs-job -l job-name -d 'Job name (#SBATCH --job-name)' -r
complete -c hpcs-job -l sbatch-flag -d 'Extra sbatch option, written as one `#SBATCH` line (repeatable), e.g. --sbatch-flag=--output=job-%j.out or --sbatch-flag=--mem=4G' -r
complete -c hpcs-job -l mount-root -d 'Directory under which the archives are mounted (one subdirectory per archive), e.g. /sd-container' -r
complete -c hpcs-job -l hpcs-mount -d 'The hpcs-mount program on the compute nodes (a name in PATH or an absolute path)' -r
complete -c hpcs-job -l mount-arg -d 'Extra argument for every hpcs-mount call (repeatable), e.g. --mount-arg=--cache-size=1G' -r
complete -c hpcs-job -l results -d 'Encrypt what the job writes into $HPCS_RESULTS ({root}/results) into this directory on shared storage (hpcs-mount --output)' -r
complete -c hpcs-job -l results-recipient -d 'Recipient of the results: age1…, ssh-ed25519 …, ssh-rsa … (repeatable; needed with --results)' -r
complete -c hpcs-job -l results-c4gh-recipient -d 'Encrypt the results as Crypt4GH to this public key file instead (repeatable; as crypt4gh-keygen writes it; the nodes read it at this path): each result is then a plain .c4gh file for EGA or SD Connect (hpcs-mount --output-c4gh-recipient; RESULTS.md "Crypt4GH results")' -r -F
complete -c hpcs-job -l scratch -d 'Give the job an encrypted, read-write scratch directory, $HPCS_SCRATCH ({root}/scratch), stored in DIR on each node (hpcs-mount --scratch); SIZE (e.g. 100G) limits it' -r
complete -c hpcs-job -l scratch-keep -d 'After the application succeeded, copy PATH (relative to the scratch directory; a file or a directory) into the results directory, which encrypts it to --results-recipient (repeatable)' -r
complete -c hpcs-job -l mount-timeout -d 'Seconds to wait for the archives to be mounted on every node' -r
complete -c hpcs-job -s o -l output -d 'Write the batch script here (mode 0700) instead of standard output' -r -F
complete -c hpcs-job -l insecure-no-pins -d 'INSECURE: do not pin the archives. The job then mounts (and, for --container and --secret-script, runs) whatever archive its key opens at those paths when it starts: one packed by anybody to your public key, or an older version. Only for archives you re-pack between submitting and running; --vault jobs still check the dataset'
complete -c hpcs-job -l vault -d 'Fetch the archive keys from Vault/OpenBao with the job\'s JWT-SVID (passed to hpcs-mount as --vault), for archives packed with `hpcs-pack pack --vault --allow <SPIFFE ID>`'
complete -c hpcs-job -l srun -d 'Mount with an srun step on every node even for a single node (what --nodes > 1 does; useful to test that path on one node)'
complete -c hpcs-job -l submit -d 'Submit the script with `sbatch --parsable` and print the job id'
complete -c hpcs-job -s h -l help -d 'Print help (see more with \'--help\')'
complete -c hpcs-job -s V -l version -d 'Print version'
