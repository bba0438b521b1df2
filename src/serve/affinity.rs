//! Socket affinity (`--socket-affinity`, as Knot DNS's `socket-affinity`): each UDP worker
//! is pinned to one CPU, and the kernel hands each datagram to the worker on the CPU that
//! received it, instead of hashing the client's address and port over the workers.
//!
//! A datagram is then read, answered and sent on the CPU whose network softirq received
//! it: the worker is woken where the datagram was queued, not from another CPU, and the
//! socket's queue stays in that CPU's cache. The cost is balance: the workers get what
//! their CPUs receive, so a network card with fewer receive queues than workers leaves
//! some workers idle. Off by default for that reason.
//!
//! The steering is a three-instruction classic BPF program on the `SO_REUSEPORT` group
//! (`SO_ATTACH_REUSEPORT_CBPF`): the index of the socket is `cpu % workers`. Sockets are
//! numbered in the order they joined the group, so worker `k` must run on a CPU `c` with
//! `c % workers == k`: [`plan`] picks one for each worker.

use std::fmt;

/// Why the CPUs this process may use cannot give every worker a CPU of its own that the
/// steering sends datagrams to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoPlan(String);

impl fmt::Display for NoPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The CPU each of `workers` workers is pinned to: worker `k` gets the allowed CPU `c`
/// with `c % workers == k`. That needs exactly one allowed CPU per worker, with distinct
/// remainders, as any contiguous range (`taskset -c 4-7`, a cpuset) has.
pub fn plan(allowed: &[usize], workers: usize) -> Result<Vec<usize>, NoPlan> {
    let listed = || {
        allowed
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if workers == 0 || allowed.len() != workers {
        // The default --threads follows a CPU quota, which can be below the CPUs allowed.
        return Err(NoPlan(format!(
            "--socket-affinity needs one worker per CPU: this process may run on {} CPUs ({}) \
             and --threads is {workers} (given, or the default that follows a CPU quota); set \
             --threads to {}, or give the process as many CPUs as threads (a cpuset, taskset)",
            allowed.len(),
            listed(),
            allowed.len()
        )));
    }
    let mut cpus = vec![None; workers];
    for &cpu in allowed {
        let slot = &mut cpus[cpu % workers];
        if slot.is_some() {
            return Err(NoPlan(format!(
                "--socket-affinity needs a contiguous set of CPUs: this process may run on \
                 CPUs {}, of which more than one is {} modulo {workers}; give it a range such \
                 as `taskset -c 0-{}`",
                listed(),
                cpu % workers,
                workers - 1
            )));
        }
        *slot = Some(cpu);
    }
    Ok(cpus.into_iter().flatten().collect())
}

/// What the functions below answer where they do not exist.
#[cfg(not(target_os = "linux"))]
fn unsupported() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "CPU steering of sockets is Linux only",
    )
}

/// The CPUs this process may run on (its affinity mask), in ascending order.
#[cfg(target_os = "linux")]
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is a plain bit set, valid all zero; sched_getaffinity writes at
    // most the size given.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        set
    };
    let max = usize::try_from(libc::CPU_SETSIZE).unwrap_or(0);
    // SAFETY: CPU_ISSET reads the bit set it is given, for indices below CPU_SETSIZE.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

#[cfg(not(target_os = "linux"))]
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    Err(unsupported())
}

/// Tells the kernel to hand each datagram for `socket`'s `SO_REUSEPORT` group to socket
/// number `cpu % workers` of the group (in the order they were bound).
#[cfg(target_os = "linux")]
pub fn steer_by_cpu(socket: &std::net::UdpSocket, workers: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    /// Offset of the "current CPU" ancillary load (linux/filter.h, SKF_AD_CPU).
    const SKF_AD_CPU: i32 = 36;
    let modulo = u32::try_from(workers)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many workers"))?;
    let instruction = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let mut program = [
        // A = the CPU the datagram was received on.
        instruction(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            (libc::SKF_AD_OFF + SKF_AD_CPU) as u32,
        ),
        // A = A % workers: the index of the socket in the group.
        instruction(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, modulo),
        instruction(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: fprog points at `program`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            error.kind(),
            format!("--socket-affinity: the kernel refused the CPU steering program: {error}"),
        ));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn steer_by_cpu(_socket: &std::net::UdpSocket, _workers: usize) -> std::io::Result<()> {
    Err(unsupported())
}

/// Pins the calling thread to `cpu`.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as in `allowed_cpus`; CPU_SET writes a bit below CPU_SETSIZE (plan's CPUs
    // come from the mask, so they are).
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(_cpu: usize) -> std::io::Result<()> {
    Err(unsupported())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_gets_the_cpu_its_remainder_names() {
        assert_eq!(plan(&[0], 1), Ok(vec![0]));
        assert_eq!(plan(&[0, 1, 2, 3], 4), Ok(vec![0, 1, 2, 3]));
        // A range that does not start at 0: 5 % 4 == 1, so worker 1 runs on CPU 5.
        assert_eq!(plan(&[4, 5, 6, 7], 4), Ok(vec![4, 5, 6, 7]));
        assert_eq!(plan(&[2, 3, 4], 3), Ok(vec![3, 4, 2]));
    }

    #[test]
    fn a_plan_needs_one_worker_per_cpu_with_distinct_remainders() {
        let fewer = plan(&[0, 1], 1).unwrap_err().to_string();
        assert!(
            fewer.contains("--threads is 1") && fewer.contains("set --threads to 2"),
            "{fewer}"
        );
        let more = plan(&[0, 1], 4).unwrap_err().to_string();
        assert!(more.contains("2 CPUs (0,1)"), "{more}");
        assert!(plan(&[], 0).is_err());
        let gappy = plan(&[0, 2], 2).unwrap_err().to_string();
        assert!(
            gappy.contains("contiguous") && gappy.contains("CPUs 0,2"),
            "{gappy}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_steering_program_attaches_to_a_reuseport_group() {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let socket = crate::serve::udp::reuseport_socket(addr).expect("bind");
        steer_by_cpu(&socket, 2).expect("the kernel accepts the program");
        let allowed = allowed_cpus().expect("affinity mask");
        assert!(!allowed.is_empty());
    }
}
