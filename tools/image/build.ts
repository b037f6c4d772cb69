// `pnpm image [--out DIR]`: the container image, built without Docker.
//
// The build machines cannot run Docker and cannot pull from a container
// registry, so the image is assembled from parts this machine can fetch and
// committed with buildah (daemonless, storage driver vfs, no container run):
//
//   /lib, /lib64, /usr/lib   glibc, libstdc++ and libgcc from Debian 12's own packages
//                            (`apt-get download` at the versions apt resolves, listed
//                            in the image's labels), nothing else: no shell, no package manager
//   /usr/local/bin/node      Node.js 24 LTS, the binary of the workspace's `node`
//                            devDependency (the official build), debug symbols stripped
//   /app                     `pipeops-tunnel` from the tarball `pnpm pack:all` writes (the package
//                            users get), without its dependencies: the command runs from its
//                            bundle, which carries them at the lockfile's versions
//   /etc/passwd, /etc/group  a non-root user, pipeops (1000)
//
// The Dockerfile builds an equivalent image where Docker runs (from the
// workspace on node:24-bookworm-slim); this build is the one tested here.
// `pnpm image:check` runs the image's entrypoint from its root filesystem.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { packAll, run } from '../pack.ts';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The Debian packages the Node binary needs (its ldd), and jemalloc (MALLOC_ENV), no more. */
const DEBIAN_PACKAGES = ['libc6', 'libgcc-s1', 'libstdc++6', 'gcc-12-base', 'libjemalloc2'];
/**
 * jemalloc instead of glibc's malloc, returning freed pages after about a
 * second: after a burst of 200 concurrent 1 MiB responses glibc kept the
 * agent's RSS 66–105 MB over its baseline a minute later (fds and heap long
 * back), jemalloc 8–22 MB (docs/reliability.md, "Memory").
 */
export const MALLOC_ENV = ['LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', 'MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0'];
export const IMAGE_NAME = 'localhost/pipeops-tunnel';
/** Where the command is installed in the image, and its entrypoint. */
export const APP_PACKAGE_DIR = 'app/node_modules/pipeops-tunnel';
export const APP_BIN = `/${APP_PACKAGE_DIR}/bin/pipeops-tunnel-published.js`;
export const NODE_BIN = '/usr/local/bin/node';

/** buildah without a daemon or a registry: vfs storage (no overlay needed), chroot isolation. */
export function buildah(args: string[]): string {
  return run('buildah', ['--storage-driver', 'vfs', ...args], { env: { ...process.env, BUILDAH_ISOLATION: 'chroot' } }).trim();
}

function duBytes(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (st === undefined) continue;
    n += st.isDirectory() ? duBytes(p) : st.size;
  }
  return n;
}

export interface BuiltImage {
  archive: string;
  tag: string;
  rootfsBytes: number;
  archiveBytes: number;
  debian: string[];
}

export function buildImage(outDir: string): BuiltImage {
  const version = (JSON.parse(readFileSync(join(ROOT, 'packages', 'cli', 'package.json'), 'utf8')) as { version: string }).version;
  const work = mkdtempSync(join(tmpdir(), 'pt-image-'));
  try {
    const rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    // 1. The C and C++ runtime, from Debian's packages.
    const debs = join(work, 'debs');
    mkdirSync(debs);
    try {
      run('apt-get', ['download', ...DEBIAN_PACKAGES], { cwd: debs });
    } catch {
      // A fresh machine may have no package lists yet.
      run('apt-get', ['update', '-qq']);
      run('apt-get', ['download', ...DEBIAN_PACKAGES], { cwd: debs });
    }
    const debian: string[] = [];
    for (const deb of readdirSync(debs)
      .filter((f) => f.endsWith('.deb'))
      .sort()) {
      run('dpkg-deb', ['-x', join(debs, deb), rootfs]);
      debian.push(deb.replace(/_amd64\.deb$/, '').replace(/%3a/g, ':'));
    }
    for (const dir of ['usr/share/doc', 'usr/share/lintian', 'usr/share/gcc', 'usr/share/gdb']) rmSync(join(rootfs, dir), { recursive: true, force: true });
    // 2. Node 24, stripped of its debug symbols.
    mkdirSync(join(rootfs, 'usr', 'local', 'bin'), { recursive: true });
    run('strip', ['--strip-debug', '-o', join(rootfs, NODE_BIN), join(ROOT, 'node_modules', 'node', 'bin', 'node')]);
    chmodSync(join(rootfs, NODE_BIN), 0o755);
    // 3. The command: the `pipeops-tunnel` package from its packed tarball, and nothing else. It runs
    //    from its bundle (dist/), which carries every dependency the command loads at the versions of
    //    the lockfile; the libraries' lib/ stays as packed, unused here. Without pino-pretty the
    //    command logs JSON lines on a terminal too.
    const tarballs = packAll(join(work, 'tarballs'));
    const pkg = join(rootfs, APP_PACKAGE_DIR);
    mkdirSync(pkg, { recursive: true });
    run('tar', ['-xzf', tarballs.get('cli')!, '--strip-components=1', '-C', pkg]);
    // 4. A user, a writable /tmp (an emptyDir in the manifests: the root filesystem is read-only).
    mkdirSync(join(rootfs, 'etc'), { recursive: true });
    writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/sbin/nologin\npipeops:x:1000:1000:pipeops-tunnel:/app:/sbin/nologin\n');
    writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\npipeops:x:1000:\n');
    writeFileSync(join(rootfs, 'etc', 'nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
    mkdirSync(join(rootfs, 'tmp'));
    chmodSync(join(rootfs, 'tmp'), 0o1777);
    const rootfsBytes = duBytes(rootfs);

    // 5. The image: scratch + that tree, configured, committed to an OCI archive.
    const tag = `${IMAGE_NAME}:${version}`;
    const ctr = buildah(['from', '--name', `pt-image-${process.pid}`, 'scratch']);
    try {
      const mount = buildah(['mount', ctr]);
      run('cp', ['-a', `${rootfs}/.`, mount]);
      buildah(['umount', ctr]);
      buildah([
        'config',
        '--entrypoint',
        JSON.stringify([NODE_BIN, APP_BIN]),
        '--cmd',
        'connect',
        '--user',
        '1000:1000',
        '--workingdir',
        '/app',
        '--port',
        '8080',
        '--env',
        'NODE_ENV=production',
        '--env',
        'NODE_COMPILE_CACHE=/tmp/node-compile-cache',
        ...MALLOC_ENV.flatMap((e) => ['--env', e]),
        '--label',
        `org.opencontainers.image.title=pipeops-tunnel`,
        '--label',
        `org.opencontainers.image.version=${version}`,
        '--label',
        'org.opencontainers.image.licenses=Apache-2.0',
        '--label',
        `org.opencontainers.image.source=https://github.com/PipeOpsHQ/pipeops-tunnel`,
        '--label',
        `dev.pipeops.debian-packages=${debian.join(' ')}`,
        '--label',
        `dev.pipeops.node=${run(join(rootfs, NODE_BIN), ['--version']).trim()}`,
        ctr,
      ]);
      mkdirSync(outDir, { recursive: true });
      const archive = join(outDir, `pipeops-tunnel-${version}.oci.tar`);
      rmSync(archive, { force: true });
      buildah(['commit', '--format', 'oci', ctr, `oci-archive:${archive}:${tag}`]);
      return { archive, tag, rootfsBytes, archiveBytes: statSync(archive).size, debian };
    } finally {
      try {
        buildah(['rm', ctr]);
      } catch {
        /* already gone */
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: join(ROOT, 'dist', 'image') } } });
  const img = buildImage(resolve(values.out));
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  process.stdout.write(
    `${img.tag}\n  archive ${img.archive} (${mb(img.archiveBytes)}; the tree ${mb(img.rootfsBytes)} uncompressed)\n  Debian ${img.debian.join(', ')}\n`,
  );
}
