#!/bin/bash
# Sortie launch script of unit.000042 (SRUN); rerun it by hand with: bash launch.sh
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
exec srun --exclusive --cpu-bind=none --nodes=2 --ntasks=4 --cpus-per-task=1 --ntasks-per-node=2 --nodelist=nid0001,nid0002 "gmx_mpi" "mdrun" "-s" "${INPUT}" "-deffnm" "run $RP_UNIT_ID"
