// doctest main for tests that run under mpirun: every rank runs every test case; a failure on
// any rank makes the process exit non-zero, which mpirun reports.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <mpi.h>

int main(int argc, char** argv) {
    // As shardsim itself: the executor's communication thread calls MPI beside the main thread.
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    doctest::Context ctx;
    ctx.applyCommandLine(argc, argv);
    // Only rank 0 prints the summary; every rank prints its failures.
    if (rank != 0) ctx.setOption("minimal", true);
    const int failed = ctx.run();
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}
