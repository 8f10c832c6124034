//! `vccfs demo`: the built-in emulator plus a mount of it, in one process and on one
//! runtime. Builds the emulator's arguments and the [`MountOptions`] itself (the demo has
//! no account, no flags beyond its own), then serves like `vccfs mount` does.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::api::{ApiConfig, Credentials};
use crate::emulator::EmulatorArgs;
use crate::mount::{self, MountOptions};
use crate::util::now_secs;

use super::options::check_sizes;
use super::{CliError, DemoArgs};

/// The demo's fixed block size.
const BLOCK_SIZE: u64 = 256 << 10;

/// Check, start the emulator, mount it, serve until unmounted, stop the emulator.
pub fn demo(args: DemoArgs) -> Result<(), CliError> {
    mount::check_mountpoint(&args.mountpoint)?;
    check_sizes(args.cache_size, BLOCK_SIZE)?;
    let rt = mount::runtime()?;
    let emu_args = EmulatorArgs {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        interactions: args.interactions,
        big_file_mib: (args.big_file_mib > 0).then_some(args.big_file_mib),
        ..EmulatorArgs::default()
    };
    let emu = rt.block_on(crate::emulator::start(emu_args))?;
    let credentials = Credentials {
        client_id: emu.client_id().to_string(),
        client_secret: emu.client_secret().to_string(),
    };
    let api = ApiConfig::new(&emu.api_url, &emu.auth_url, credentials)?;
    let now = now_secs();
    let mnt = args.mountpoint.display().to_string();
    let banner = format!(
        "\nvccfs demo: a synthetic contact center is mounted at {mnt}\n\
         (emulator at {api}; request counts: curl -s {stats})\n\n\
         Try, in another terminal:\n\
         \x20 ls {mnt}/interactions | head\n\
         \x20 ls -l {mnt}/interactions/$(ls {mnt}/interactions | tail -1)\n\
         \x20 ls {mnt}/by-date/\n\
         \x20 ffprobe -hide_banner $(ls {mnt}/interactions/*/callRecording | tail -1)\n\
         \x20 grep -rl refund {mnt}/interactions --include=transcript | head\n\
         \x20 getfattr -d {mnt}/interactions/$(ls {mnt}/interactions | head -1)\n\
         \x20 rsync -a {mnt}/ /tmp/vcc-backup/\n\n\
         Press Ctrl-C here (or run `vccfs unmount {mnt}`) to stop.\n",
        api = emu.api_url,
        stats = emu.stats_url,
    );
    let opts = MountOptions {
        mountpoint: args.mountpoint.clone(),
        api,
        from: now - time::Duration::days(31),
        to: now + time::Duration::minutes(1),
        cache_size: args.cache_size,
        catalog_memory: 256 << 20,
        block_size: BLOCK_SIZE,
        allow_other: false,
        allow_root: false,
        access: crate::fs::Access::default(),
        daemon: false,
        refresh: Duration::from_secs(600),
        log_file: None,
        audit_log: None,
        calls_name: Default::default(),
        banner: Some(banner),
        // A fresh emulator each time: nothing worth keeping.
        disk: None,
        redis: None,
        metrics: None,
        rolling: true,
        cache_key_file: None,
    };
    let result = mount::serve(&rt, opts);
    rt.block_on(emu.shutdown());
    rt.shutdown_timeout(Duration::from_secs(1));
    result.map_err(CliError::from)
}
