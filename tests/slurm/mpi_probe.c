/* A tiny MPI program for the Slurm tests: every rank prints one line with what the launcher gave
 * it (world rank and size, node-local rank from the MPI node-local communicator and from the
 * environment, visible GPUs, Slurm job and step), then all ranks meet in a barrier.
 *
 *   shardsim_slurm_probe                 every rank reports and exits 0
 *   shardsim_slurm_probe --fail-rank R   rank R exits with status 3 without MPI_Finalize while
 *                                        the others wait in a barrier: the launcher has to end
 *                                        the step (srun --kill-on-bad-exit, mpirun on its own)
 *   shardsim_slurm_probe --abort-rank R  rank R calls MPI_Abort(3) instead
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char* env_or(const char* name, const char* fallback) {
    const char* v = getenv(name);
    return v ? v : fallback;
}

int main(int argc, char** argv) {
    int fail_rank = -1, abort_rank = -1;
    for (int i = 1; i + 1 < argc; ++i) {
        if (strcmp(argv[i], "--fail-rank") == 0) fail_rank = atoi(argv[i + 1]);
        if (strcmp(argv[i], "--abort-rank") == 0) abort_rank = atoi(argv[i + 1]);
    }
    MPI_Init(&argc, &argv);
    int rank = 0, size = 0, local = 0, local_size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_size(node, &local_size);
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    printf("probe rank=%d size=%d host=%s mpi_local=%d/%d slurm_localid=%s ompi_local_rank=%s "
           "cuda_visible_devices=%s slurm_job_id=%s slurm_step_id=%s\n",
           rank, size, host, local, local_size, env_or("SLURM_LOCALID", "-"),
           env_or("OMPI_COMM_WORLD_LOCAL_RANK", "-"), env_or("CUDA_VISIBLE_DEVICES", "-"),
           env_or("SLURM_JOB_ID", "-"), env_or("SLURM_STEP_ID", "-"));
    fflush(stdout);
    if (rank == fail_rank) {
        fprintf(stderr, "probe rank %d on %s: failing on purpose (exit 3)\n", rank, host);
        exit(3);
    }
    if (rank == abort_rank) {
        fprintf(stderr, "probe rank %d on %s: MPI_Abort on purpose\n", rank, host);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Comm_free(&node);
    MPI_Finalize();
    return 0;
}
