#!/bin/bash
# Sortie launch script of unit.000042 (MPIRUN); rerun it by hand with: bash launch.sh
cd /scratch/u/sortie.sandbox/session.0000/pilot.0000/unit.000042 || exit 1
exec 1>STDOUT 2>STDERR

# environment
export RP_UNIT_ID=unit.000042
export RP_CORES=4
export CUDA_VISIBLE_DEVICES=1
export OMP_NUM_THREADS="4"
export INPUT="$HOME/in.dat"

# pre_exec
module load gromacs

# the command
exec mpirun -np 4 -host nid0001:2,nid0002:2 -x RP_UNIT_ID -x RP_CORES -x CUDA_VISIBLE_DEVICES -x OMP_NUM_THREADS -x INPUT "gmx_mpi" "mdrun" "-s" "${INPUT}" "-deffnm" "run $RP_UNIT_ID"
