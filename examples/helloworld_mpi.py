"""Every MPI rank says hello with its rank, the world size and its host (the MPI executable of
running-mpi-executables.ts, as RP's helloworld_mpi.py is for its running_mpi_executables.py)."""
import socket

from mpi4py import MPI

comm = MPI.COMM_WORLD
print(f"Hello, World! I am rank {comm.Get_rank()} of {comm.Get_size()} on {socket.gethostname()}", flush=True)
