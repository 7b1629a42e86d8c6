#!/bin/bash -l
#PBS -N sortie-pilot.0000
#PBS -o /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.out
#PBS -e /scratch/u/sortie.sandbox/session.0000/pilot.0000/agent.err
#PBS -l walltime=01:30:00
#PBS -l nodes=2:ppn=32
#PBS -l mem=2048mb
#PBS -q normal
#PBS -A ABC123
#PBS -r n

cd '/scratch/u/sortie.sandbox/session.0000/pilot.0000' || exit 1
# preBootstrap (resource config)
module load nodejs/20
exec node agent.cjs agent.json
